"""One component rule of a plan (``steps`` of schema 2): its JSON form, checks and application.

Each entry of a plan's ``steps`` list is one rule on one label::

    {"step": "relabel_small", "label": 3, "to": 1, "min_size": 50, "unit": "voxels",
     "connectivity": 3, "reason": "held-out Dice of label 3 +0.021 (noise 0.004)"}
    {"step": "volume_gate", "label": 3, "to": 0, "min_size": 120.5, "unit": "mm3"}
    {"step": "keep_top_k", "label": 2, "k": 2, "connectivity": 1}
    {"step": "min_probability", "label": 1, "statistic": "max", "threshold": 0.7, "to": 0,
     "connectivity": 3}

``connectivity`` (1..3, scipy convention) is required for the rules that find components;
``volume_gate`` looks at the label's total and takes none. ``unit`` is ``voxels`` or ``mm3``
(converted with the case's voxel volume). ``reason`` is informational (why
:func:`~nnunet_ext.postprocess.determine_plan` took the step). The rules themselves are in
:mod:`nnunet_ext.postprocess.component_rules`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import check_keys, describe, expect_mapping
from nnunet_ext.postprocess.component_rules import (
    STATISTICS,
    drop_improbable_components,
    gate_label_volume,
    keep_top_k_components,
    relabel_small_components,
)

__all__ = ["STEP_FIELDS", "UNITS", "ComponentStep", "apply_component_step"]

#: The fields each kind of step has (besides ``step``, ``label`` and ``reason``).
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "relabel_small": ("to", "min_size", "unit", "connectivity"),
    "volume_gate": ("to", "min_size", "unit"),
    "keep_top_k": ("k", "connectivity"),
    "min_probability": ("statistic", "threshold", "to", "connectivity"),
}
#: Units of ``min_size``.
UNITS = ("voxels", "mm3")


def _int(value: Any, name: str, low: int, high: int | None = None) -> int:
    bad = isinstance(value, bool) or not isinstance(value, (int, np.integer))
    if bad or value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {span}; got {value!r}.")
    return int(value)


def _number(value: Any, name: str) -> float:
    bad = isinstance(value, bool) or not isinstance(value, (int, float, np.floating))
    if bad or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class ComponentStep:
    """One rule on one label; which fields apply depends on ``step`` (:data:`STEP_FIELDS`).

    Attributes:
        step: ``relabel_small``, ``volume_gate``, ``keep_top_k`` or ``min_probability``.
        label: The label the rule looks at (> 0).
        to: The label changed voxels get (0: background).
        min_size: Size threshold (exclusive) of ``relabel_small`` / ``volume_gate``.
        unit: ``voxels`` or ``mm3`` (of ``min_size``).
        k: Components kept by ``keep_top_k``.
        statistic: ``max`` or ``mean`` fused probability of a component (``min_probability``).
        threshold: Probability threshold (exclusive) of ``min_probability``.
        connectivity: 1..3 (scipy convention); required where components are found.
        reason: Why the step was taken (informational).

    Examples:
        >>> ComponentStep("keep_top_k", 2, k=2, connectivity=1).to_dict()
        {'step': 'keep_top_k', 'label': 2, 'k': 2, 'connectivity': 1}
        >>> ComponentStep("keep_top_k", 2, k=2)
        Traceback (most recent call last):
        ...
        ValueError: keep_top_k needs connectivity (1..3); got None.
    """

    step: str
    label: int
    to: int = 0
    min_size: float | None = None
    unit: str = "voxels"
    k: int | None = None
    statistic: str = "max"
    threshold: float | None = None
    connectivity: int | None = None
    reason: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.step not in STEP_FIELDS:
            raise ValueError(f"step must be one of {', '.join(STEP_FIELDS)}; got {self.step!r}.")
        fields = STEP_FIELDS[self.step]
        object.__setattr__(self, "label", _int(self.label, f"{self.step} label", 1, 255))
        object.__setattr__(self, "to", _int(self.to, f"{self.step} to", 0, 255))
        if "to" in fields and self.to == self.label:
            raise ValueError(f"{self.step} to must differ from label {self.label}; got {self.to}.")
        if "min_size" in fields:
            if self.min_size is None:
                raise ValueError(f"{self.step} needs min_size; got None.")
            object.__setattr__(self, "min_size", _number(self.min_size, f"{self.step} min_size"))
            if self.unit not in UNITS:
                raise ValueError(f"{self.step} unit must be voxels or mm3; got {self.unit!r}.")
        if "k" in fields:
            object.__setattr__(self, "k", _int(self.k, "keep_top_k k", 1))
        if "threshold" in fields:
            if self.statistic not in STATISTICS:
                raise ValueError(
                    f"min_probability statistic must be max or mean; got {self.statistic!r}."
                )
            if self.threshold is None:
                raise ValueError("min_probability needs threshold; got None.")
            value = _number(self.threshold, "min_probability threshold")
            object.__setattr__(self, "threshold", value)
        if "connectivity" in fields:
            if self.connectivity is None:
                raise ValueError(f"{self.step} needs connectivity (1..3); got None.")
            object.__setattr__(
                self, "connectivity", _int(self.connectivity, f"{self.step} connectivity", 1, 3)
            )

    @property
    def needs_probabilities(self) -> bool:
        """Whether the step reads the fused probabilities (``min_probability``)."""
        return self.step == "min_probability"

    def describe(self) -> str:
        """A short text, e.g. ``relabel_small label 3 -> 1 below 50 voxels``.

        Examples:
            >>> ComponentStep("volume_gate", 3, min_size=120.5, unit="mm3").describe()
            'volume_gate label 3 -> 0 below 120.5 mm3'
        """
        if self.step == "keep_top_k":
            return f"keep_top_k label {self.label} k={self.k}"
        if self.step == "min_probability":
            return (
                f"min_probability label {self.label} -> {self.to} below {self.statistic} "
                f"{self.threshold:.4g}"
            )
        return f"{self.step} label {self.label} -> {self.to} below {self.min_size:.6g} {self.unit}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``step``, ``label``, the step's fields, ``reason`` when set."""
        data: dict[str, Any] = {"step": self.step, "label": self.label}
        data.update({name: getattr(self, name) for name in STEP_FIELDS[self.step]})
        if self.reason is not None:
            data["reason"] = self.reason
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str, where: str) -> ComponentStep:
        """Read one step strictly (unknown or missing keys are errors naming ``where``).

        Raises:
            InputError: Naming ``source`` and the key path.
        """
        data = expect_mapping(data, source=source, where=where)
        kind = data.get("step")
        if kind not in STEP_FIELDS:
            raise InputError(
                source, f"one of {', '.join(STEP_FIELDS)}", describe(kind), key=f"{where}.step"
            )
        fields = STEP_FIELDS[kind]
        required = ("step", "label", *(f for f in fields if f not in ("to", "unit", "statistic")))
        check_keys(
            data,
            source=source,
            where=where,
            allowed={"step", "label", "reason", *fields},
            required=required,
        )
        if "reason" in data and not isinstance(data["reason"], str):
            raise InputError(source, "a string", describe(data["reason"]), key=f"{where}.reason")
        try:
            return cls(**{k: v for k, v in data.items()})
        except (TypeError, ValueError) as err:
            raise InputError(source, "a valid step", str(err).rstrip("."), key=where) from err


def apply_component_step(
    labels: NDArray[np.integer[Any]],
    step: ComponentStep,
    *,
    voxel_volume: float | None = None,
    probabilities: NDArray[np.floating[Any]] | None = None,
) -> NDArray[np.integer[Any]]:
    """Run one step on a label map (a new array).

    Args:
        labels: Integer label map. Not modified.
        step: The rule.
        voxel_volume: mm³ of one voxel; needed for a ``min_size`` in ``mm3``.
        probabilities: Fused probabilities ``(C, *labels.shape)``; needed by
            ``min_probability``.

    Raises:
        ValueError: If a needed ``voxel_volume`` or ``probabilities`` is missing, naming the step.

    Examples:
        >>> labels = np.array([[3, 0, 3, 3]], dtype=np.uint8)
        >>> step = ComponentStep("relabel_small", 3, to=1, min_size=2, connectivity=1)
        >>> apply_component_step(labels, step)
        array([[1, 0, 3, 3]], dtype=uint8)
    """
    size = step.min_size
    if size is not None and step.unit == "mm3":
        if voxel_volume is None or not voxel_volume > 0:
            raise ValueError(
                f"step '{step.describe()}' gives a size in mm3 and needs the voxel spacing; "
                f"got {voxel_volume!r}."
            )
        size = size / voxel_volume
    if step.step == "relabel_small":
        return relabel_small_components(
            labels,
            label=step.label,
            to=step.to,
            min_voxels=float(size or 0.0),
            connectivity=step.connectivity,
        )
    if step.step == "volume_gate":
        return gate_label_volume(
            labels, label=step.label, to=step.to, min_voxels=float(size or 0.0)
        )
    if step.step == "keep_top_k":
        return keep_top_k_components(
            labels, label=step.label, k=int(step.k or 1), connectivity=step.connectivity
        )
    if probabilities is None:
        raise ValueError(
            f"step '{step.describe()}' needs the fused probabilities; run the plan in predict or "
            "ensemble, or pass probabilities_dir (the folder of the CASE.npz files)."
        )
    return drop_improbable_components(
        labels,
        probabilities,
        label=step.label,
        threshold=float(step.threshold or 0.0),
        statistic="mean" if step.statistic == "mean" else "max",
        to=step.to,
        connectivity=step.connectivity,
    )
