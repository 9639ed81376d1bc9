"""Tune per-label ensemble weights on cross-validation folders: files in, spec out.

Each input folder holds one model's CV probabilities (``CASE.npz``, e.g. the ``validation/``
folder of ``nnUNetv2_train --npz``, or folders merging all folds); the reference folder holds the
label files (e.g. nnU-Net's ``gt_segmentations``). Every ``.npz`` is decompressed once and
reduced to the compact form of :mod:`nnunet_ext.tune.compact` (:mod:`nnunet_ext.tune.reading`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.ensemble.rules import LabelRules
from nnunet_ext.ensemble.spec import EnsembleSpec
from nnunet_ext.io.splits import load_splits
from nnunet_ext.tune.compact import CompactCVData
from nnunet_ext.tune.gate import WeightDecision, gate_weights
from nnunet_ext.tune.holdout import HoldoutRuns, holdout_runs
from nnunet_ext.tune.procedure import Procedure
from nnunet_ext.tune.reading import check_tune_options, load_cv_data
from nnunet_ext.tune.rules import LabelDecision, RuleChoice, choose_rules
from nnunet_ext.tune.scoring import mean_over_cases
from nnunet_ext.tune.search import SearchResult

__all__ = ["HELD_OUT_FRACTION", "TuneResult", "overfit_warning", "tune_weights"]

logger = logging.getLogger(__name__)

#: Warn when less than this fraction of the in-sample gain holds on held-out cases.
HELD_OUT_FRACTION = 0.5


def overfit_warning(label: str, in_sample: float, held_out: float) -> str | None:
    """Return a warning when the held-out gain does not confirm the in-sample gain.

    The threshold is relative: a gain of +0.25 in-sample and +0.23 held out is a clear win, a
    gain of +0.02 in-sample and +0.005 held out is not.

    Args:
        label: Label name for the message.
        in_sample: Dice gain over equal weights on the tuning cases.
        held_out: The k-fold-over-cases estimate of the same gain.

    Returns:
        The warning, or ``None`` when the estimates agree (or there is nothing to confirm).

    Examples:
        >>> overfit_warning("RV", 0.247, 0.234) is None
        True
        >>> print(overfit_warning("RV", 0.02, 0.005))  # doctest: +ELLIPSIS
        label RV: in-sample gain +0.0200 but held-out gain +0.0050; the weights may overfit ...
    """
    if math.isnan(held_out) or in_sample <= 1e-3:
        return None
    if held_out <= 0 or held_out < HELD_OUT_FRACTION * in_sample:
        return (
            f"label {label}: in-sample gain {in_sample:+.4f} but held-out gain {held_out:+.4f}; "
            "the weights may overfit the CV cases"
        )
    return None


@dataclass(frozen=True)
class TuneResult:
    """The outcome of :func:`tune_weights`.

    Attributes:
        input_dirs: The model folders, as given.
        reference_dir: The reference folder.
        cases: Cases used (present in every input and in the references).
        left_out: Case to the folders lacking it (cases not used).
        label_ids: Foreground labels scored (class indices).
        label_names: Name of each scored label.
        weights: ``(M, C)`` chosen weights (columns sum to 1), class 0 = background.
        dice: ``(L,)`` in-sample mean Dice per label with ``weights`` and ``rules``.
        baselines: ``"equal"`` and each model's folder name to ``(L,)`` mean Dice.
        cv_gain: ``(L,)`` held-out gain over equal weights (k-fold over cases: weights and
            rules re-chosen without each fold's cases), or ``None``.
        warnings: Human-readable warnings (e.g. held-out and in-sample gains disagree).
        timings: Seconds spent reading and searching.
        rules: Per-label rules ``(kind, member, scale)`` by class index, in priority order
            (see :mod:`nnunet_ext.tune.rules`); empty: weights only.
        decisions: Every label's candidates with in-sample and held-out Dice, and the
            decision steps.
        weights_dice: ``(L,)`` in-sample mean Dice of the weights alone.
        weight_decisions: Per label, the held-out gate of its tuned weights
            (:mod:`nnunet_ext.tune.gate`); empty without the weight gate or without folds.
        rule_labels: Labels (class indices) left to the rules because one model alone
            predicts them (:mod:`nnunet_ext.tune.search`); empty without rules or folds.
        splits: The ``splits_final.json`` given, or ``None``.
    """

    input_dirs: list[str]
    reference_dir: str
    cases: list[str]
    left_out: dict[str, list[str]]
    label_ids: list[int]
    label_names: list[str]
    weights: NDArray[np.float64]
    dice: NDArray[np.float64]
    baselines: dict[str, NDArray[np.float64]]
    cv_gain: NDArray[np.float64] | None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rules: list[tuple[int, str, int | None, float | None]] = field(default_factory=list)
    decisions: list[LabelDecision] = field(default_factory=list)
    weights_dice: NDArray[np.float64] | None = None
    weight_decisions: list[WeightDecision] = field(default_factory=list)
    rule_labels: list[int] = field(default_factory=list)
    splits: str | None = None

    @property
    def in_sample_gain(self) -> NDArray[np.float64]:
        """Tuned minus equal-weight mean Dice per label, on the tuning data."""
        return self.dice - self.baselines["equal"]

    def label_rules(self) -> LabelRules:
        """The rules as :class:`~nnunet_ext.ensemble.rules.LabelRules` on class indices.

        Examples:
            >>> import numpy as np
            >>> r = TuneResult([], "", [], {}, [], [], np.full((2, 4), 0.5), np.zeros(3), {},
            ...                None, rules=[(3, "from", 1, None), (2, "scale", None, 1.5)])
            >>> r.label_rules().take, r.label_rules().scale
            (((3, 1),), (1.0, 1.0, 1.5, 1.0))
        """
        take = [(label, m) for label, kind, m, _ in self.rules if kind == "from" and m is not None]
        scale = {label: s for label, kind, _, s in self.rules if kind == "scale" and s is not None}
        return LabelRules.build(self.weights.shape[1], scale=scale or None, take=take)

    def spec(self) -> EnsembleSpec:
        """The :class:`nnunet_ext.ensemble.spec.EnsembleSpec` of the chosen weights."""
        rounded = np.round(self.weights, 4)
        label_weights: list[Mapping[str | int, float]] = [
            {str(c): float(rounded[m, c]) for c in range(rounded.shape[1])}
            for m in range(rounded.shape[0])
        ]
        rules: list[dict[str, Any]] = []
        for label, kind, member, scale in self.rules:
            if kind == "from":
                rules.append({"label": str(label), "from": member})
            elif kind == "scale":
                rules.append({"label": str(label), "scale": scale})
        return EnsembleSpec.from_weights(
            self.input_dirs,
            weights=[1.0] * len(self.input_dirs),
            label_weights=label_weights,
            rules=rules,
        )


def _read(
    input_dirs: Sequence[str | os.PathLike[str]],
    reference_dir: str | os.PathLike[str],
    *,
    num_workers: int,
    dataset_json: str | os.PathLike[str] | None,
    splits: str | os.PathLike[str] | None,
) -> tuple[CompactCVData, list[str], dict[str, list[str]], list[int], list[str]]:
    """Read the CV data (:func:`~nnunet_ext.tune.reading.load_cv_data`) and its training folds.

    With ``splits``, each case's nnU-Net training fold is attached to the data.
    """
    data, cases, left_out, label_ids, label_names = load_cv_data(
        input_dirs, reference_dir, num_workers=num_workers, dataset_json=dataset_json
    )
    if splits is not None:
        folds_of_cases = np.asarray(load_splits(splits, cases), dtype=np.int64)
        data = dataclasses.replace(data, training_folds=folds_of_cases)
    contested = data.probabilities.shape[2] / max(data.probabilities.shape[2] + data.fixed.sum(), 1)
    logger.info("%.1f%% of voxels are contested between the models", 100 * contested)
    return data, cases, left_out, label_ids, label_names


def tune_weights(
    input_dirs: Sequence[str | os.PathLike[str]],
    reference_dir: str | os.PathLike[str],
    *,
    num_workers: int = 1,
    steps: int | None = None,
    max_rounds: int = 4,
    cv_folds: int = 5,
    dataset_json: str | os.PathLike[str] | None = None,
    rules: bool = True,
    splits: str | os.PathLike[str] | None = None,
    procedure: Procedure | None = None,
) -> TuneResult:
    """Tune per-label weights and rules of several models on their CV probabilities.

    First the per-label weights searched on all CV cases (:mod:`nnunet_ext.tune.search`; with
    the optional weight gate, kept per label only where they gain held out beyond the noise,
    :mod:`nnunet_ext.tune.gate`), then per label a rule (``weighted``, ``from`` a member, or a
    decision ``scale``, :mod:`nnunet_ext.tune.rules`): a more complex rule is taken only when
    its held-out gain over the simpler one exceeds the noise (twice its per-case bootstrap
    standard error).

    Args:
        input_dirs: One CV probability folder per model (``CASE.npz``).
        reference_dir: Reference label files (``CASE<file_ending>``).
        num_workers: Processes decompressing cases.
        steps: Simplex grid resolution (see :func:`nnunet_ext.tune.search.search_weights`).
        max_rounds: Coordinate-ascent sweeps at most.
        cv_folds: Folds over cases for the held-out gain estimate and the rules (0 or 1: skip
            them: the searched weights are kept, every label weighted, with a warning). Each
            fold re-tunes with the same procedure on the other cases (sharing the baselines'
            per-case Dice with the main search).
        dataset_json: Labels file; default found next to the folders.
        rules: Whether to choose per-label rules (``False``: weights only, as before). Rules
            need the held-out folds; without them every label stays ``weighted``.
        splits: nnU-Net's ``splits_final.json`` the models were trained with: the test of
            whether a model is blind to a label then also looks at each training fold's CV
            cases (:func:`~nnunet_ext.tune.judge.sole_reliable_member`).
        procedure: The optional parts of the procedure (default: those the ablation of
            ``benchmarks/bench_tune_draws.py`` found to pay; :class:`Procedure`).

    Returns:
        The chosen weights with the per-label report.

    Raises:
        NotADirectoryError, FileNotFoundError: For missing inputs.
        ValueError: For inconsistent inputs or bad options.
    """
    check_tune_options(
        num_workers=num_workers, steps=steps, max_rounds=max_rounds, cv_folds=cv_folds
    )
    if splits is not None:
        load_splits(splits, [])  # its structure, before any case is read
    start = time.perf_counter()
    data, cases, left_out, label_ids, label_names = _read(
        input_dirs, reference_dir, num_workers=num_workers, dataset_json=dataset_json, splits=splits
    )
    read_s = time.perf_counter() - start
    warnings: list[str] = []
    folds = cv_folds if cv_folds >= 2 and len(cases) >= 2 else 0
    if cv_folds >= 2 and len(cases) < 2:
        warnings.append("only one case: no held-out gain estimate")
    # rules need the held-out folds; without them no label is left to the rules
    with_rules = rules and folds >= 2
    procedure = procedure or Procedure()
    # the training folds serve two parts, each of which can be left out
    no_folds = dataclasses.replace(data, training_folds=None)
    blind_data = data if procedure.fold_blindness else no_folds
    runs = holdout_runs(
        blind_data,
        label_ids,
        steps=steps,
        max_rounds=max_rounds,
        num_folds=folds,
        rules=with_rules and procedure.left_to_rules,
    )
    gate_data = data if procedure.gate_uncounted else no_folds
    gated = _gated_weights(gate_data, label_ids, runs, warnings, gate=procedure.weight_gate)
    search_s = time.perf_counter() - start - read_s
    decisions, final_dice, chosen_rules, cv_gain = _rules(
        blind_data, label_ids, runs, gated, rules, procedure
    )
    rules_s = time.perf_counter() - start - read_s - search_s
    baselines, names = _named_baselines(runs.result, input_dirs)
    warnings += _label_warnings(runs.result, final_dice, cv_gain, label_names, names)
    for text in warnings:
        logger.warning("%s", text)
    return TuneResult(
        input_dirs=[str(d) for d in input_dirs],
        reference_dir=str(reference_dir),
        cases=cases,
        left_out=left_out,
        label_ids=label_ids,
        label_names=label_names,
        weights=gated.weights,
        dice=final_dice,
        baselines=baselines,
        cv_gain=cv_gain,
        warnings=warnings,
        timings={"read_s": read_s, "search_s": search_s, "rules_s": rules_s},
        rules=chosen_rules,
        decisions=decisions,
        weights_dice=gated.dice,
        weight_decisions=gated.decisions,
        rule_labels=list(runs.result.rule_labels),
        splits=None if splits is None else str(splits),
    )


@dataclass(frozen=True)
class _Gated:
    """The weights after the held-out gate (the searched weights without folds)."""

    weights: NDArray[np.float64]
    fold_weights: list[NDArray[np.float64]]
    dice: NDArray[np.float64]
    decisions: list[WeightDecision]
    cv_gain: NDArray[np.float64] | None


def _gated_weights(
    data: CompactCVData,
    label_ids: list[int],
    runs: HoldoutRuns,
    warnings: list[str],
    *,
    gate: bool = True,
) -> _Gated:
    result = runs.result
    if not runs.folds:
        warnings.append(
            "no held-out folds: no held-out estimate, every label keeps its searched weights and "
            "stays weighted (rules need folds)"
            + ("; the weight gate is not applied" if gate else "")
        )
        return _Gated(result.weights, runs.fold_weights, result.dice, [], runs.gain)
    if not gate:  # the default: the searched weights as they are
        return _Gated(result.weights, runs.fold_weights, result.dice, [], runs.gain)
    gated = gate_weights(data, label_ids, runs)
    cv_gain = mean_over_cases(gated.held_out) - result.baselines["equal"]
    return _Gated(gated.weights, gated.fold_weights, gated.in_sample, gated.decisions, cv_gain)


def _rules(
    data: CompactCVData,
    label_ids: list[int],
    runs: HoldoutRuns,
    gated: _Gated,
    rules: bool,
    procedure: Procedure,
) -> tuple[
    list[LabelDecision],
    NDArray[np.float64],
    list[tuple[int, str, int | None, float | None]],
    NDArray[np.float64] | None,
]:
    """``(decisions, dice, rules, held-out gain)`` with the rules chosen on the gated weights."""
    if not rules:
        return [], gated.dice, [], gated.cv_gain
    choice = choose_rules(
        data,
        label_ids,
        gated.weights,
        equal_per_case=runs.baseline_per_case["equal"],
        folds=runs.folds,
        fold_weights=gated.fold_weights,
        member_per_case=[runs.baseline_per_case[f"model {m}"] for m in range(data.num_models)],
        procedure=procedure,
    )
    cv_gain = gated.cv_gain
    if choice.held_out is not None:
        cv_gain = choice.held_out - runs.result.baselines["equal"]
    return choice.decisions, choice.dice, _rule_list(choice), cv_gain


def _rule_list(choice: RuleChoice) -> list[tuple[int, str, int | None, float | None]]:
    """The rules as ``(label, kind, member, scale)``: ``from`` rules in priority order first."""
    out: list[tuple[int, str, int | None, float | None]] = []
    scale = choice.rules.scale
    take = dict(choice.rules.take)
    for decision in choice.decisions:  # priority order
        if decision.label in take:
            out.append((decision.label, "from", take[decision.label], None))
    for label in sorted(d.label for d in choice.decisions):
        if scale is not None and scale[label] != 1.0:
            out.append((label, "scale", None, float(scale[label])))
    return out


def _named_baselines(
    result: SearchResult, input_dirs: Sequence[str | os.PathLike[str]]
) -> tuple[dict[str, NDArray[np.float64]], dict[str, str]]:
    """The baselines by folder name, and the search's baseline names to folder names."""
    names = {"equal": "equal"}
    baselines: dict[str, NDArray[np.float64]] = {"equal": result.baselines["equal"]}
    for m, folder in enumerate(input_dirs):
        baselines[str(folder)] = result.baselines[f"model {m}"]
        names[f"model {m}"] = str(folder)
    return baselines, names


def _label_warnings(
    result: SearchResult,
    final_dice: NDArray[np.float64],
    cv_gain: NDArray[np.float64] | None,
    label_names: list[str],
    names: dict[str, str],
) -> list[str]:
    """Per label: below its best baseline in-sample (and why), or an unconfirmed gain."""
    warnings = []
    in_sample = final_dice - result.baselines["equal"]
    for j, name in enumerate(label_names):
        if not np.isnan(result.floors[j]) and final_dice[j] < result.floors[j] - 1e-12:
            best = max(
                (k for k in result.baselines if not np.isnan(result.baselines[k][j])),
                key=lambda k: float(result.baselines[k][j]),
            )
            below = (
                f"label {name}: tuned Dice {final_dice[j]:.4f} is "
                f"{result.floors[j] - final_dice[j]:.4f} below {names.get(best, best)} "
                f"({result.floors[j]:.4f}) in-sample; "
            )
            if result.dice[j] < result.floors[j] - 1e-12:
                warnings.append(
                    below + "no weight choice found keeps every label at its best baseline "
                    "together (labels compete through the argmax), so the search minimised the "
                    "largest shortfall, never going below equal weights on any label"
                )
            else:
                warnings.append(
                    below + "the searched weights reach it, but their held-out gain did not "
                    "exceed the noise, so the simpler weights were kept"
                )
        if cv_gain is not None:
            warning = overfit_warning(name, float(in_sample[j]), float(cv_gain[j]))
            if warning is not None:
                warnings.append(warning)
    return warnings
