"""The held-out procedure of the region tuner: one step per region, gated, then the guard.

Case ``i`` is held out in fold ``i % k``. Regions are visited from the last channel of
``regions_class_order`` to the first (a later region overrides an earlier one in the label map,
so a region's own Dice depends on the regions after it). For each region, the weights and
threshold of the best mean Dice (:func:`~nnunet_ext.tune.region_search.channel_dice`) are
chosen on all cases, and on each fold's training cases with that fold's own settings of the
other regions; the step is kept when its held-out per-case Dice beats the current setting's
by more than the noise and no other region loses beyond its own
(:func:`nnunet_ext._stats.judge_label_step`, the rule of the label tuner).

The guard: the held-out Dice of every region is compared with the best single member's (its
own weights, threshold 0.5); a region more than its noise below (``NOISE_Z`` bootstrap standard
errors or :data:`~nnunet_ext._stats.DROP_TOLERANCE`) is handed to that member (a ``from`` rule).

With a :class:`~nnunet_ext.tune.region_metric.RegionMetric` (``tune --metric``) the same
procedure decides on that metric instead of Dice: the Dice search proposes each region's
weights, the metric chooses among thresholds around the Dice-best one, and the held-out gate
and the guard compare the metric's per-case values (its own direction, pairing and
undefined-case rule, :mod:`nnunet_ext.tune.region_metric`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import (
    DROP_TOLERANCE,
    NOISE_Z,
    bootstrap_noise,
    judge_label_step,
    nan_mean,
    paired_difference,
)
from nnunet_ext.tune.region_data import RegionCVData
from nnunet_ext.tune.region_metric import RegionMetric
from nnunet_ext.tune.region_search import channel_dice, choose_candidate, region_case_dice
from nnunet_ext.tune.region_setting import RegionSetting, member_setting

__all__ = ["RegionProcedure", "RegionStep", "tune_region_setting"]


@dataclass
class RegionStep:
    """One region's step: what was chosen, and its held-out verdict.

    Attributes:
        channel: The region channel.
        weights: ``(M,)`` weights chosen on all cases.
        threshold: Threshold chosen on all cases.
        in_sample: Mean Dice (or metric value, with a metric) of the region with the step, on
            all cases.
        verdict: :func:`~nnunet_ext._stats.judge_label_step`'s result (``None`` without folds).
        kept: Whether the step was kept.
        guarded: The guard handed the region to this member instead (``None``: it did not).
    """

    channel: int
    weights: NDArray[np.float64]
    threshold: float
    in_sample: float
    verdict: dict[str, Any] | None
    kept: bool
    guarded: int | None = None


@dataclass(frozen=True)
class RegionProcedure:
    """What :func:`tune_region_setting` decided.

    Attributes:
        setting: The chosen setting (on all cases).
        steps: Each region's step, last channel first.
        held_out: ``(cases, R)`` held-out per-case values on the metric decided on (Dice, or
            the metric's goodness: higher is better), or ``None`` without folds.
        held_out_dice: ``(cases, R)`` held-out per-case Dice, or ``None`` without folds.
        warnings: The guard's warnings.
    """

    setting: RegionSetting
    steps: list[RegionStep]
    held_out: NDArray[np.float64] | None
    held_out_dice: NDArray[np.float64] | None
    warnings: list[str]


@dataclass
class _State:
    data: RegionCVData
    candidates: NDArray[np.float64]
    folds: list[list[int]]
    metric: RegionMetric | None = None
    cache: dict[tuple[Any, ...], NDArray[np.float64]] = field(default_factory=dict)

    def dice(self, setting: RegionSetting, channel: int) -> NDArray[np.float64]:
        key = setting.key(channel)
        if key not in self.cache:
            self.cache[key] = channel_dice(
                self.data, channel, setting.weights, setting.thresholds, self.candidates
            )
        return self.cache[key]

    def choose(
        self, setting: RegionSetting, channel: int, cases: list[int]
    ) -> tuple[RegionSetting, float]:
        """``setting`` with ``channel`` chosen on ``cases``, and its mean there."""
        index, threshold, mean = choose_candidate(
            self.dice(setting, channel), self.candidates, cases
        )
        if self.metric is None:
            return setting.with_channel(channel, self.candidates[index], threshold), mean
        return self.metric.choose(setting, channel, self.candidates[index], threshold, cases)

    def held_out(
        self, settings: Sequence[RegionSetting], *, dice: bool = False
    ) -> NDArray[np.float64]:
        """Per-case values (Dice, or the metric's), each fold's cases under that fold's setting."""
        out = np.empty((self.data.num_cases, len(self.data.regions)))
        for fold, cases in enumerate(self.folds):
            if self.metric is None or dice:
                out[cases] = region_case_dice(
                    self.data, settings[fold].weights, settings[fold].thresholds, cases
                )
            else:
                out[cases] = self.metric.goodness(settings[fold], cases)
        return out

    def difference(self, new: NDArray[np.float64], old: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.metric is None:
            return paired_difference(new, old)
        return self.metric.difference(new, old)

    def judge(
        self, channel: int, new: NDArray[np.float64], old: NDArray[np.float64]
    ) -> dict[str, Any]:
        if self.metric is None:
            return judge_label_step(channel, paired_difference(new, old))
        return self.metric.judge(channel, new, old)


def tune_region_setting(
    data: RegionCVData,
    candidates: NDArray[np.float64],
    num_folds: int,
    member_values: Sequence[NDArray[np.float64]],
    *,
    metric: RegionMetric | None = None,
) -> RegionProcedure:
    """Run the procedure of the module docstring.

    Args:
        data: The compact CV data.
        candidates: ``(K, M)`` weight candidates of a channel.
        num_folds: Folds over cases (< 2 or one case: every step is kept without a check).
        member_values: Each member's per-case values ``(cases, R)`` (its own decision): Dice,
            or with ``metric`` its goodness (:meth:`RegionMetric.goodness`).
        metric: Decide on this metric instead of Dice (``None``: Dice).

    Returns:
        The setting, the steps, the held-out values and the guard's warnings.
    """
    n, regions = data.num_cases, len(data.regions)
    k = min(num_folds, n)
    folds = [[i for i in range(n) if i % k == f] for f in range(k)] if k >= 2 else []
    state = _State(data, candidates, folds, metric)
    current = member_setting(data.num_models, regions, None)
    per_fold = [current.copy() for _ in folds]
    steps: list[RegionStep] = []
    all_cases = list(range(n))
    for channel in reversed(range(regions)):
        chosen, mean = state.choose(current, channel, all_cases)
        proposal = [
            state.choose(setting, channel, [i for i in all_cases if i not in cases])[0]
            for setting, cases in zip(per_fold, folds, strict=True)
        ]
        verdict = None
        if folds:
            verdict = state.judge(channel, state.held_out(proposal), state.held_out(per_fold))
        kept = verdict is None or bool(verdict["passes"])
        weights, threshold = chosen.weights[:, channel], chosen.thresholds[channel]
        steps.append(RegionStep(channel, weights, threshold, mean, verdict, kept))
        if kept:
            current = chosen
            per_fold = proposal
    if not folds:
        return RegionProcedure(current, steps, None, None, [])
    warnings = _guard(state, current, per_fold, steps, member_values)
    return RegionProcedure(
        current,
        steps,
        state.held_out(per_fold),
        state.held_out(per_fold, dice=True),
        warnings,
    )


def _guard(
    state: _State,
    current: RegionSetting,
    per_fold: list[RegionSetting],
    steps: list[RegionStep],
    member_values: Sequence[NDArray[np.float64]],
) -> list[str]:
    """Hand every region held out below its best member beyond the noise to that member.

    Changes ``current`` and ``per_fold`` in place; returns the warnings.
    """
    warnings: list[str] = []
    handed: set[int] = set()
    empty = 0.0 if state.metric is None else -np.inf  # no defined value: never the best
    for _ in range(len(state.data.regions)):  # a hand-over changes other regions' labels
        held_out = state.held_out(per_fold)
        worst: tuple[float, int, int] | None = None
        for r in sorted(set(range(len(state.data.regions))) - handed):
            best = max(
                range(len(member_values)),
                key=lambda m: nan_mean(member_values[m][:, r], empty=empty),
            )
            diff = state.difference(held_out[:, r], member_values[best][:, r])
            noise = max(NOISE_Z * bootstrap_noise(diff), DROP_TOLERANCE)
            shortfall = -nan_mean(diff, empty=0.0) - noise
            if shortfall > 0 and (worst is None or shortfall > worst[0]):
                worst = (shortfall, r, best)
        if worst is None:
            return warnings
        _, r, best = worst
        handed.add(r)
        one_hot = np.eye(state.data.num_models)[best]
        current.weights[:, r] = one_hot
        current.thresholds[r] = 0.5
        for setting in per_fold:
            setting.weights[:, r] = one_hot
            setting.thresholds[r] = 0.5
        for step in steps:
            if step.channel == r:
                step.guarded = best
        on = "" if state.metric is None else f" ({state.metric.name})"
        warnings.append(
            f"region channel {r}: the tuned ensemble scored below member {best} beyond the "
            f"noise on held-out cases{on}; the region is taken from member {best} (a from rule)"
        )
    return warnings
