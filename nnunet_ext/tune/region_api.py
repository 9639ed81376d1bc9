"""Tune per-region weights and thresholds of region-based (sigmoid) models: files in, spec out.

The region counterpart of :func:`~nnunet_ext.tune.api.tune_weights`: the CV probabilities are
read once into :class:`~nnunet_ext.tune.region_data.RegionCVData`, each region's weights and
decision threshold are chosen on region Dice and kept only where they gain on held-out cases
beyond the noise (:mod:`nnunet_ext.tune.region_gate`), and the guard keeps every region at
least at its best single member's held-out Dice minus the noise. With ``metric`` (any metric or
preset ``postprocess determine --metric`` takes) the same procedure decides on that metric
(:mod:`nnunet_ext.tune.region_metric`); Dice is reported beside it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import nan_mean
from nnunet_ext.ensemble.spec import EnsembleSpec
from nnunet_ext.io import LabelSpec
from nnunet_ext.postprocess.objective import Objective
from nnunet_ext.tune.reading import check_tune_options
from nnunet_ext.tune.region_data import load_region_data
from nnunet_ext.tune.region_gate import RegionStep, tune_region_setting
from nnunet_ext.tune.region_metric import RegionMetric
from nnunet_ext.tune.region_search import region_case_dice, weight_candidates
from nnunet_ext.tune.region_setting import RegionSetting, member_setting

__all__ = ["RegionTuneResult", "default_region_steps", "tune_regions"]

logger = logging.getLogger(__name__)


def default_region_steps(num_models: int) -> int:
    """Simplex grid resolution of a region's weights: 10 up to 3 models, 6 for 4, 4 beyond.

    Examples:
        >>> default_region_steps(2), default_region_steps(5)
        (10, 4)
    """
    return 10 if num_models <= 3 else 6 if num_models == 4 else 4


@dataclass(frozen=True)
class RegionTuneResult:
    """The outcome of :func:`tune_regions`.

    Attributes:
        input_dirs: The model folders, as given.
        reference_dir: The reference folder.
        cases: Cases used.
        left_out: Case to the folders lacking it.
        region_names: Name of each region channel (``dataset.json``).
        weights: ``(M, R)`` chosen weights (columns sum to 1).
        thresholds: ``(R,)`` chosen decision thresholds.
        dice: ``(R,)`` in-sample mean Dice of each region with the chosen setting.
        baselines: ``"equal"`` (equal weights, 0.5) and each model's folder (its own decision)
            to ``(R,)`` mean Dice.
        held_out: ``(R,)`` held-out mean Dice of the procedure (each fold's cases under the
            setting chosen without them), or ``None`` without folds.
        steps: Each region's step (last channel first), with its held-out verdict.
        warnings: Human-readable warnings.
        timings: Seconds spent reading and tuning.
        held_out_cases: ``(cases, R)`` held-out per-case Dice behind ``held_out``.
        member_cases: Each model's per-case Dice ``(cases, R)`` (its own decision).
        metric: What the steps and the guard decided on (``"dice"``, ``"hd95"``, a preset...).
        metric_values: With a metric other than Dice: ``"equal"``, each model's folder and
            ``"tuned"`` (in-sample) to ``(R,)`` mean metric values, and ``"held_out"`` (the
            procedure's held-out mean, with folds); ``None`` for Dice.
        higher_is_better: The metric's direction (``False`` for distances).
        metric_cases: With a metric other than Dice: each model's folder and ``"held_out"``
            (with folds) to ``(cases, R)`` per-case values oriented so that higher is better
            (the values the gate and the guard compared); ``None`` for Dice.
    """

    input_dirs: list[str]
    reference_dir: str
    cases: list[str]
    left_out: dict[str, list[str]]
    region_names: list[str]
    weights: NDArray[np.float64]
    thresholds: list[float]
    dice: NDArray[np.float64]
    baselines: dict[str, NDArray[np.float64]]
    held_out: NDArray[np.float64] | None
    steps: list[RegionStep] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    held_out_cases: NDArray[np.float64] | None = None
    member_cases: list[NDArray[np.float64]] = field(default_factory=list)
    metric: str = "dice"
    metric_values: dict[str, NDArray[np.float64]] | None = None
    higher_is_better: bool = True
    metric_cases: dict[str, NDArray[np.float64]] | None = None

    @property
    def cv_gain(self) -> NDArray[np.float64] | None:
        """Held-out minus equal-weight (0.5) mean Dice per region."""
        return None if self.held_out is None else self.held_out - self.baselines["equal"]

    @property
    def metric_gain(self) -> NDArray[np.float64] | None:
        """Held-out minus equal-weight (0.5) mean metric value per region, positive better.

        ``None`` for Dice (see :attr:`cv_gain`) or without folds.
        """
        values = self.metric_values
        if values is None or "held_out" not in values:
            return None
        gain: NDArray[np.float64] = values["held_out"] - values["equal"]
        return gain if self.higher_is_better else -gain

    def from_member(self, channel: int) -> int | None:
        """The member whose own decision the region is (one-hot weights, 0.5), or ``None``.

        Examples:
            >>> r = RegionTuneResult(["a", "b"], "", [], {}, ["WT"], np.array([[0.0], [1.0]]),
            ...                      [0.5], np.zeros(1), {}, None)
            >>> r.from_member(0)
            1
        """
        column = self.weights[:, channel]
        if self.thresholds[channel] != 0.5 or np.count_nonzero(column) != 1:
            return None
        return int(np.flatnonzero(column)[0])

    def spec(self) -> EnsembleSpec:
        """The spec: per-region ``label_weights``, ``threshold`` and ``from`` rules."""
        rounded = np.round(self.weights, 4)
        label_weights: list[dict[str | int, float]] = [{} for _ in self.input_dirs]
        rules: list[dict[str, Any]] = []
        for r, name in enumerate(self.region_names):
            member = self.from_member(r)
            if member is not None and len(self.input_dirs) > 1:
                rules.append({"label": name, "from": member})
                continue
            if not np.allclose(rounded[:, r], rounded[0, r]):
                for m in range(len(self.input_dirs)):
                    label_weights[m][name] = float(rounded[m, r])
            if self.thresholds[r] != 0.5:
                rules.append({"label": name, "threshold": round(self.thresholds[r], 4)})
        return EnsembleSpec.from_weights(self.input_dirs, label_weights=label_weights, rules=rules)


def tune_regions(
    input_dirs: Sequence[str | os.PathLike[str]],
    reference_dir: str | os.PathLike[str],
    label_spec: LabelSpec,
    *,
    num_workers: int = 1,
    steps: int | None = None,
    cv_folds: int = 5,
    metric: str = "dice",
    nsd_tolerance: float = 1.0,
    convention: str = "nan",
) -> RegionTuneResult:
    """Tune per-region weights and thresholds of region models on their CV probabilities.

    Args:
        input_dirs: One CV probability folder per model (``CASE.npz``, one channel per region).
        reference_dir: Reference label files (``CASE<file_ending>``).
        label_spec: The region ``dataset.json`` (labels with tuples, ``regions_class_order``).
        num_workers: Processes decompressing cases.
        steps: Simplex grid resolution of a region's weights (default
            :func:`default_region_steps`); thresholds are tried at 0.01, 0.02, ..., 0.99.
        cv_folds: Folds over cases for the held-out gate (0 or 1: no gate, every step is kept,
            with a warning).
        metric: What the steps and the guard decide on: ``dice`` (the histogram search alone)
            or any metric ``postprocess determine`` takes (``hd95``, ``nsd``, ``lesion_dice``,
            a preset name, ``score:FILE``; :mod:`nnunet_ext.tune.region_metric`).
        nsd_tolerance: NSD tolerance in mm (``metric`` ``nsd``).
        convention: Empty-case convention of the metric values (``nan``, ``max-distance``...).

    Returns:
        The chosen weights and thresholds with the per-region report.

    Raises:
        NotADirectoryError, FileNotFoundError: For missing inputs.
        ValueError: For inconsistent inputs or bad options.
    """
    check_tune_options(num_workers=num_workers, steps=steps, cv_folds=cv_folds)
    objective = Objective(
        metric,
        nsd_tolerance=nsd_tolerance,
        convention=convention,
        ignore_label=label_spec.ignore_label,
    )
    start = time.perf_counter()
    data, cases, left_out, names = load_region_data(
        input_dirs, reference_dir, label_spec, num_workers=num_workers, volumes=metric != "dice"
    )
    read_s = time.perf_counter() - start
    num_models, num_regions = data.num_models, len(data.regions)
    settings = [member_setting(num_models, num_regions, m) for m in range(num_models)]
    member_dice = [region_case_dice(data, *_unpack(s)) for s in settings]
    equal = member_setting(num_models, num_regions, None)
    equal_dice = region_case_dice(data, *_unpack(equal))
    scorer = None if metric == "dice" else RegionMetric(data, objective)
    member_values = member_dice if scorer is None else [scorer.goodness(s) for s in settings]
    candidates = weight_candidates(num_models, steps or default_region_steps(num_models))
    outcome = tune_region_setting(data, candidates, cv_folds, member_values, metric=scorer)
    warnings = list(outcome.warnings)
    if outcome.held_out is None:
        warnings.append(
            "no held-out folds: the chosen weights and thresholds are not gated (every region "
            "keeps them without a held-out check)"
        )
    warnings = [_named(w, names) for w in warnings]
    setting = outcome.setting
    dice = region_case_dice(data, setting.weights, setting.thresholds)
    baselines = {"equal": nan_mean(equal_dice, axis=0)}
    for m, folder in enumerate(input_dirs):
        baselines[str(folder)] = nan_mean(member_dice[m], axis=0)
    for text in warnings:
        logger.warning("%s", text)
    held_out = outcome.held_out_dice
    return RegionTuneResult(
        input_dirs=[str(d) for d in input_dirs],
        reference_dir=str(reference_dir),
        cases=cases,
        left_out=left_out,
        region_names=names,
        weights=setting.weights,
        thresholds=list(setting.thresholds),
        dice=nan_mean(dice, axis=0),
        baselines=baselines,
        held_out=None if held_out is None else nan_mean(held_out, axis=0),
        steps=outcome.steps,
        warnings=warnings,
        timings={"read_s": read_s, "search_s": time.perf_counter() - start - read_s},
        held_out_cases=held_out,
        member_cases=member_dice,
        metric=metric,
        metric_values=None
        if scorer is None
        else _metric_values(scorer, input_dirs, member_values, equal, setting, outcome.held_out),
        higher_is_better=objective.higher_is_better,
        metric_cases=None
        if scorer is None
        else {str(d): v for d, v in zip(input_dirs, member_values, strict=True)}
        | ({} if outcome.held_out is None else {"held_out": outcome.held_out}),
    )


def _metric_values(
    scorer: RegionMetric,
    input_dirs: Sequence[str | os.PathLike[str]],
    member_values: Sequence[NDArray[np.float64]],
    equal: RegionSetting,
    setting: RegionSetting,
    held_out: NDArray[np.float64] | None,
) -> dict[str, NDArray[np.float64]]:
    """Mean metric values of the baselines, the tuned setting and the held-out procedure."""
    out = {"equal": scorer.means(scorer.goodness(equal))}
    for folder, values in zip(input_dirs, member_values, strict=True):
        out[str(folder)] = scorer.means(values)
    out["tuned"] = scorer.means(scorer.goodness(setting))
    if held_out is not None:
        out["held_out"] = scorer.means(held_out)
    return out


def _unpack(setting: Any) -> tuple[NDArray[np.float64], list[float]]:
    return setting.weights, setting.thresholds


def _named(warning: str, names: Sequence[str]) -> str:
    """``region channel 2`` -> ``region ET``."""
    for channel, name in enumerate(names):
        warning = warning.replace(f"region channel {channel}:", f"region {name}:")
    return warning
