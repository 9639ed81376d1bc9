"""The second estimate: the tuned ensemble on labeled cases that no fold trained on.

The tuner's own estimate (k folds over the CV cases) scores each CV case as predicted by the
one fold model that did not train on it; new cases are predicted by the average of all fold
models, which can differ, most on a small label the fold models disagree on. Labeled cases that
no fold trained on (a hold-out set), predicted by the members as they are deployed
(``nnunet-ext predict --save-probabilities`` or ``nnUNetv2_predict --save_probabilities`` with
all folds), show the deployed ensemble. :func:`deployed_estimate` scores equal weights, each
member and the tuned spec (weights and rules) on them, with the same scoring and the same
bootstrap noise as the tuner, so that the two estimates can be read side by side
(``tune --holdout``). The tuner does not choose on them: they judge its choice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import bootstrap_noise, nan_mean
from nnunet_ext.tune.api import TuneResult
from nnunet_ext.tune.candidates import RuleScorer
from nnunet_ext.tune.compact import CompactCVData
from nnunet_ext.tune.judge import paired_difference
from nnunet_ext.tune.reading import load_cv_data
from nnunet_ext.tune.scoring import _baseline_per_case, mean_over_cases

__all__ = [
    "DeployedEstimate",
    "HoldoutCases",
    "deployed_estimate",
    "estimate_dict",
    "format_estimates",
    "read_holdout",
    "score_holdout",
]


@dataclass(frozen=True)
class DeployedEstimate:
    """Equal weights, each member and the tuned spec on the hold-out cases.

    Attributes:
        input_dirs: The members' hold-out probability folders, in the tuning order.
        reference_dir: The hold-out references.
        cases: The hold-out cases scored.
        label_names: Name of each scored label.
        equal: ``(cases, L)`` Dice of equal weights.
        members: Per member, ``(cases, L)`` Dice of its own argmax.
        tuned: ``(cases, L)`` Dice of the tuned weights and rules.
    """

    input_dirs: list[str]
    reference_dir: str
    cases: list[str]
    label_names: list[str]
    equal: NDArray[np.float64]
    members: list[NDArray[np.float64]]
    tuned: NDArray[np.float64]

    def gain(self) -> NDArray[np.float64]:
        """``(L,)`` tuned minus equal-weight mean Dice (the tuner's ``held-out`` column)."""
        return mean_over_cases(self.tuned) - mean_over_cases(self.equal)

    def noise(self) -> NDArray[np.float64]:
        """``(L,)`` bootstrap standard error of each label's mean per-case gain."""
        diff = paired_difference(self.tuned, self.equal)
        return np.array([bootstrap_noise(diff[:, j]) for j in range(diff.shape[1])])

    def best_member_gain(self) -> NDArray[np.float64]:
        """``(L,)`` tuned minus the best member's mean Dice on each label."""
        means = np.stack([mean_over_cases(m) for m in self.members])
        best: NDArray[np.float64] = np.nanmax(means, axis=0)
        return mean_over_cases(self.tuned) - best

    def foreground(self) -> dict[str, float]:
        """Mean foreground Dice of equal weights, each member (``"model m"``) and the tuned spec.

        Examples:
            >>> one = np.array([[0.5, 1.0]])
            >>> e = DeployedEstimate([], "", ["c"], ["a", "b"], one, [one * 0, one], one)
            >>> e.foreground()
            {'equal': 0.75, 'model 0': 0.0, 'model 1': 0.75, 'tuned': 0.75}
        """
        out = {"equal": nan_mean(mean_over_cases(self.equal))}
        out.update({f"model {m}": nan_mean(mean_over_cases(v)) for m, v in enumerate(self.members)})
        out["tuned"] = nan_mean(mean_over_cases(self.tuned))
        return out


@dataclass(frozen=True)
class HoldoutCases:
    """The hold-out cases read once (:func:`read_holdout`), before any tuning."""

    input_dirs: list[str]
    reference_dir: str
    data: CompactCVData
    cases: list[str]
    label_ids: list[int]
    label_names: list[str]


def read_holdout(
    holdout_dirs: Sequence[str | os.PathLike[str]],
    holdout_reference: str | os.PathLike[str],
    *,
    num_workers: int = 1,
    dataset_json: str | os.PathLike[str] | None = None,
) -> HoldoutCases:
    """Read the hold-out probability folders and references (errors name these parameters).

    Raises:
        NotADirectoryError: If a folder does not exist.
        ValueError: For inputs :func:`~nnunet_ext.tune.reading.load_cv_data` refuses.
    """
    for i, folder in enumerate(holdout_dirs):
        if not Path(folder).is_dir():
            raise NotADirectoryError(
                f"holdout_dirs[{i}] must be an existing folder of CASE.npz; got {folder}."
            )
    if not Path(holdout_reference).is_dir():
        raise NotADirectoryError(
            f"holdout_reference must be an existing folder of label files; got {holdout_reference}."
        )
    data, cases, _, label_ids, label_names = load_cv_data(
        holdout_dirs, holdout_reference, num_workers=num_workers, dataset_json=dataset_json
    )
    return HoldoutCases(
        [str(d) for d in holdout_dirs], str(holdout_reference), data, cases, label_ids, label_names
    )


def score_holdout(result: TuneResult, holdout: HoldoutCases) -> DeployedEstimate:
    """Score equal weights, each member and ``result``'s spec on read hold-out cases.

    Raises:
        ValueError: If the folders are not one per member, or their labels differ from the
            tuning's (message names the parameter).
    """
    if len(holdout.input_dirs) != len(result.input_dirs):
        raise ValueError(
            f"holdout_dirs must list one folder per tuned member ({len(result.input_dirs)}), "
            f"in the same order; got {len(holdout.input_dirs)}."
        )
    if holdout.label_ids != result.label_ids:
        raise ValueError(
            f"holdout_dirs must hold the tuned labels {result.label_ids}; got {holdout.label_ids}."
        )
    data, label_ids = holdout.data, holdout.label_ids
    baselines = _baseline_per_case(data, label_ids)
    scorer = RuleScorer(data, label_ids)
    tuned = scorer.per_case(scorer.fused(result.weights), result.label_rules())
    return DeployedEstimate(
        input_dirs=holdout.input_dirs,
        reference_dir=holdout.reference_dir,
        cases=holdout.cases,
        label_names=holdout.label_names,
        equal=baselines["equal"],
        members=[baselines[f"model {m}"] for m in range(data.num_models)],
        tuned=tuned,
    )


def deployed_estimate(
    result: TuneResult,
    holdout_dirs: Sequence[str | os.PathLike[str]],
    holdout_reference: str | os.PathLike[str],
    *,
    num_workers: int = 1,
    dataset_json: str | os.PathLike[str] | None = None,
) -> DeployedEstimate:
    """Score equal weights, each member and ``result``'s spec on labeled hold-out cases.

    :func:`read_holdout`, then :func:`score_holdout`.

    Args:
        result: The tuning result (its weights and rules).
        holdout_dirs: One hold-out probability folder per member, in the order tuned.
        holdout_reference: The hold-out reference label files.
        num_workers: Processes decompressing cases.
        dataset_json: Labels file; default found next to the folders.

    Returns:
        The per-case Dice of each.

    Raises:
        NotADirectoryError: If a folder does not exist.
        ValueError: If the folders are not one per member, or their labels differ from the
            tuning's (message names the parameter).
    """
    if len(holdout_dirs) != len(result.input_dirs):
        raise ValueError(
            f"holdout_dirs must list one folder per tuned member ({len(result.input_dirs)}), "
            f"in the same order; got {len(holdout_dirs)}."
        )
    holdout = read_holdout(
        holdout_dirs, holdout_reference, num_workers=num_workers, dataset_json=dataset_json
    )
    return score_holdout(result, holdout)


def estimate_dict(result: TuneResult, estimate: DeployedEstimate) -> dict[str, Any]:
    """The report's ``holdout`` section: per label, the CV and the hold-out estimates.

    ``cv_gain`` is the tuner's k-fold estimate of the gain over equal weights on the CV cases;
    ``holdout_gain`` the same gain on the hold-out cases, with its ``holdout_noise`` (one
    bootstrap standard error); ``holdout_vs_best_member`` the tuned Dice minus the best
    member's there.
    """
    gain, noise, best = estimate.gain(), estimate.noise(), estimate.best_member_gain()
    cv = result.cv_gain if result.cv_gain is not None else np.full(len(gain), np.nan)
    return {
        "input_dirs": estimate.input_dirs,
        "reference_dir": estimate.reference_dir,
        "num_cases": len(estimate.cases),
        "foreground": estimate.foreground(),
        "labels": [
            {
                "label": int(label),
                "name": name,
                "cv_gain": float(cv[j]),
                "holdout_gain": float(gain[j]),
                "holdout_noise": float(noise[j]),
                "holdout_vs_best_member": float(best[j]),
            }
            for j, (label, name) in enumerate(
                zip(result.label_ids, estimate.label_names, strict=True)
            )
        ],
    }


def format_estimates(section: dict[str, Any]) -> str:
    """The two estimates side by side, one line per label.

    Examples:
        >>> print(format_estimates({"num_cases": 6, "labels": [{"label": 3, "name": "RV",
        ...     "cv_gain": 0.02, "holdout_gain": -0.01, "holdout_noise": 0.004,
        ...     "holdout_vs_best_member": -0.03}]}))
        Tuned minus equal weights: CV estimate | hold-out (6 cases, deployed members)
          3 RV         +0.0200 | -0.0100 (noise 0.0040; vs best member -0.0300)
    """
    lines = [
        "Tuned minus equal weights: CV estimate | hold-out "
        f"({section['num_cases']} cases, deployed members)"
    ]
    for item in section["labels"]:
        name = f"{item['label']} {item['name']}"
        lines.append(
            f"  {name:<12} {item['cv_gain']:+.4f} | {item['holdout_gain']:+.4f} "
            f"(noise {item['holdout_noise']:.4f}; vs best member "
            f"{item['holdout_vs_best_member']:+.4f})"
        )
    return "\n".join(lines)
