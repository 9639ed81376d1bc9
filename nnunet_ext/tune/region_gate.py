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
from nnunet_ext.tune.region_search import channel_dice, choose_candidate, region_case_dice

__all__ = ["RegionSetting", "RegionStep", "member_setting", "tune_region_setting"]


@dataclass
class RegionSetting:
    """Normalised ``(M, R)`` weights and ``(R,)`` thresholds of a region ensemble."""

    weights: NDArray[np.float64]
    thresholds: list[float]

    def copy(self) -> RegionSetting:
        """An independent copy."""
        return RegionSetting(self.weights.copy(), list(self.thresholds))

    def key(self, channel: int) -> tuple[Any, ...]:
        """What the search of ``channel`` depends on: the other channels' settings."""
        others = [j for j in range(len(self.thresholds)) if j != channel]
        return (
            channel,
            self.weights[:, others].tobytes(),
            tuple(self.thresholds[j] for j in others),
        )

    def with_channel(
        self, channel: int, weights: NDArray[np.float64], threshold: float
    ) -> RegionSetting:
        """A copy with ``channel``'s weights and threshold replaced."""
        out = self.copy()
        out.weights[:, channel] = weights
        out.thresholds[channel] = threshold
        return out


def member_setting(num_models: int, num_regions: int, member: int | None) -> RegionSetting:
    """Equal weights (``member`` ``None``) or one member alone, every threshold 0.5.

    Examples:
        >>> member_setting(2, 1, 1).weights.tolist()
        [[0.0], [1.0]]
    """
    if member is None:
        weights = np.full((num_models, num_regions), 1.0 / num_models)
    else:
        weights = np.zeros((num_models, num_regions))
        weights[member] = 1.0
    return RegionSetting(weights, [0.5] * num_regions)


@dataclass
class RegionStep:
    """One region's step: what was chosen, and its held-out verdict.

    Attributes:
        channel: The region channel.
        weights: ``(M,)`` weights chosen on all cases.
        threshold: Threshold chosen on all cases.
        in_sample: Mean Dice of the region with the step, on all cases.
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


@dataclass
class _State:
    data: RegionCVData
    candidates: NDArray[np.float64]
    folds: list[list[int]]
    cache: dict[tuple[Any, ...], NDArray[np.float64]] = field(default_factory=dict)

    def dice(self, setting: RegionSetting, channel: int) -> NDArray[np.float64]:
        key = setting.key(channel)
        if key not in self.cache:
            self.cache[key] = channel_dice(
                self.data, channel, setting.weights, setting.thresholds, self.candidates
            )
        return self.cache[key]

    def held_out(self, settings: Sequence[RegionSetting]) -> NDArray[np.float64]:
        """Per-case Dice, each fold's cases under that fold's setting."""
        out = np.empty((self.data.num_cases, len(self.data.regions)))
        for fold, cases in enumerate(self.folds):
            out[cases] = region_case_dice(
                self.data, settings[fold].weights, settings[fold].thresholds, cases
            )
        return out


def tune_region_setting(
    data: RegionCVData,
    candidates: NDArray[np.float64],
    num_folds: int,
    member_dice: Sequence[NDArray[np.float64]],
) -> tuple[RegionSetting, list[RegionStep], NDArray[np.float64] | None, list[str]]:
    """Run the procedure of the module docstring.

    Args:
        data: The compact CV data.
        candidates: ``(K, M)`` weight candidates of a channel.
        num_folds: Folds over cases (< 2 or one case: every step is kept without a check).
        member_dice: Each member's per-case Dice ``(cases, R)`` (its own decision).

    Returns:
        ``(setting, steps, held-out per-case Dice of the result or None, warnings)``.
    """
    n, regions = data.num_cases, len(data.regions)
    k = min(num_folds, n)
    folds = [[i for i in range(n) if i % k == f] for f in range(k)] if k >= 2 else []
    state = _State(data, candidates, folds)
    current = member_setting(data.num_models, regions, None)
    per_fold = [current.copy() for _ in folds]
    steps: list[RegionStep] = []
    all_cases = list(range(n))
    for channel in reversed(range(regions)):
        index, threshold, mean = choose_candidate(
            state.dice(current, channel), candidates, all_cases
        )
        proposal = [
            _fold_choice(state, setting, channel, [i for i in all_cases if i not in cases])
            for setting, cases in zip(per_fold, folds, strict=True)
        ]
        verdict = None
        if folds:
            new = state.held_out(proposal)
            diff = paired_difference(new, state.held_out(per_fold))
            verdict = judge_label_step(channel, diff)
        kept = verdict is None or bool(verdict["passes"])
        steps.append(RegionStep(channel, candidates[index], threshold, mean, verdict, kept))
        if kept:
            current = current.with_channel(channel, candidates[index], threshold)
            per_fold = proposal
    if not folds:
        return current, steps, None, []
    warnings = _guard(state, current, per_fold, steps, member_dice)
    return current, steps, state.held_out(per_fold), warnings


def _fold_choice(
    state: _State, setting: RegionSetting, channel: int, training: list[int]
) -> RegionSetting:
    """``setting`` with ``channel`` chosen on the fold's training cases."""
    index, threshold, _ = choose_candidate(state.dice(setting, channel), state.candidates, training)
    return setting.with_channel(channel, state.candidates[index], threshold)


def _guard(
    state: _State,
    current: RegionSetting,
    per_fold: list[RegionSetting],
    steps: list[RegionStep],
    member_dice: Sequence[NDArray[np.float64]],
) -> list[str]:
    """Hand every region held out below its best member beyond the noise to that member.

    Changes ``current`` and ``per_fold`` in place; returns the warnings.
    """
    warnings: list[str] = []
    handed: set[int] = set()
    for _ in range(len(state.data.regions)):  # a hand-over changes other regions' labels
        held_out = state.held_out(per_fold)
        worst: tuple[float, int, int] | None = None
        for r in sorted(set(range(len(state.data.regions))) - handed):
            best = max(
                range(len(member_dice)), key=lambda m: nan_mean(member_dice[m][:, r], empty=0.0)
            )
            diff = paired_difference(held_out[:, r], member_dice[best][:, r])
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
        warnings.append(
            f"region channel {r}: the tuned ensemble scored below member {best} beyond the "
            f"noise on held-out cases; the region is taken from member {best} (a from rule)"
        )
    return warnings
