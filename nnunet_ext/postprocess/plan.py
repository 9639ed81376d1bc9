"""A postprocessing plan: which operation runs on which label, stored as JSON (never pickled).

Steps always run in this order:

1. the component rules of ``steps``, in their list order (``relabel_small``, ``volume_gate``,
   ``keep_top_k``, ``min_probability``: :mod:`nnunet_ext.postprocess.steps`),
2. keep the largest component of the union of foreground labels (``keep_largest_foreground``),
3. keep the largest component per label (``keep_largest``),
4. remove components smaller than a size, per label (``min_voxels`` / ``min_volume_mm3``),
5. fill holes per label (``fill_holes``; only background changes).

The JSON form (``schema_version`` 2)::

    {"schema_version": 2, "connectivity": null, "keep_largest_foreground": false,
     "keep_largest": [1, 2], "min_voxels": {"3": 20}, "min_volume_mm3": {},
     "fill_holes": [1, 2],
     "steps": [{"step": "relabel_small", "label": 3, "to": 1, "min_size": 50,
                "unit": "voxels", "connectivity": 3}],
     "metrics": {...}}

Version 1 (no ``steps``) still loads, as a plan without component rules. ``metrics`` is
informational: :func:`nnunet_ext.postprocess.determine_plan` records the metric before and after
each tried operation there, and every candidate of the component rules.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io import load_dataset_json, load_json, write_json
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import check_keys, describe, expect_mapping, invalid_key, key_path
from nnunet_ext.postprocess.components import (
    check_connectivity,
    keep_largest_component,
    keep_largest_foreground_component,
    remove_small_components,
)
from nnunet_ext.postprocess.holes import fill_holes
from nnunet_ext.postprocess.steps import ComponentStep, apply_component_step

__all__ = [
    "SCHEMA_VERSION",
    "PostprocessingPlan",
    "apply_plan",
    "load_plan",
    "save_plan",
]

#: Version of the plan's JSON layout (2: ``steps``, the component rules).
SCHEMA_VERSION = 2
#: Versions :func:`load_plan` reads.
READABLE_VERSIONS = (1, 2)

_KEYS = {
    "schema_version",
    "connectivity",
    "keep_largest_foreground",
    "keep_largest",
    "min_voxels",
    "min_volume_mm3",
    "fill_holes",
    "steps",
    "metrics",
}


def _ids(values: Sequence[int], name: str) -> tuple[int, ...]:
    out: list[int] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must hold label values > 0; got {value!r}.")
        out.append(int(value))
    return tuple(sorted(set(out)))


def _sizes(values: Mapping[Any, Any], name: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for key, size in values.items():
        try:
            label = int(key)
        except (TypeError, ValueError):
            label = -1
        if label <= 0 or (isinstance(key, str) and not key.strip().isdigit()):
            raise ValueError(f"{name} keys must be label values > 0; got {key!r}.")
        if (
            isinstance(size, bool)
            or not isinstance(size, (int, float))
            or not math.isfinite(size)
            or size < 0
        ):
            raise ValueError(f"{name}[{label}] must be a finite number >= 0; got {size!r}.")
        out[label] = float(size)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class PostprocessingPlan:
    """Which postprocessing step runs on which label.

    Attributes:
        keep_largest_foreground: Keep only the largest component of all foreground labels together.
        keep_largest: Labels whose largest component alone is kept.
        min_voxels: Label to the smallest component size kept, in voxels.
        min_volume_mm3: Label to the smallest component volume kept, in mm³ (needs the spacing).
        fill_holes: Labels whose holes are filled.
        steps: Component rules, run first, in order (:class:`ComponentStep`).
        connectivity: 1..ndim (scipy convention) for all component steps; ``None`` is full.
        metrics: Record of how the plan was chosen (written by ``determine_plan``).
        source: The file the plan was read from, for error messages (not part of the JSON).
    """

    keep_largest_foreground: bool = False
    keep_largest: tuple[int, ...] = ()
    min_voxels: dict[int, float] = field(default_factory=dict)
    min_volume_mm3: dict[int, float] = field(default_factory=dict)
    fill_holes: tuple[int, ...] = ()
    connectivity: int | None = None
    steps: tuple[ComponentStep, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_largest", _ids(self.keep_largest, "keep_largest"))
        object.__setattr__(self, "fill_holes", _ids(self.fill_holes, "fill_holes"))
        object.__setattr__(self, "steps", tuple(self.steps))
        for step in self.steps:
            if not isinstance(step, ComponentStep):
                raise TypeError(f"steps must hold ComponentStep objects; got {step!r}.")
        object.__setattr__(self, "min_voxels", _sizes(self.min_voxels, "min_voxels"))
        object.__setattr__(self, "min_volume_mm3", _sizes(self.min_volume_mm3, "min_volume_mm3"))
        both = sorted(set(self.min_voxels) & set(self.min_volume_mm3))
        if both:
            raise ValueError(
                f"min_voxels and min_volume_mm3 must not both set label {both[0]}; "
                "give one size per label."
            )
        if self.connectivity is not None:
            check_connectivity(self.connectivity, ndim=3)
        if not isinstance(self.keep_largest_foreground, bool):
            raise ValueError(
                "keep_largest_foreground must be true or false; "
                f"got {self.keep_largest_foreground!r}."
            )

    @property
    def is_empty(self) -> bool:
        """Whether the plan changes nothing.

        Examples:
            >>> PostprocessingPlan().is_empty, PostprocessingPlan(fill_holes=(1,)).is_empty
            (True, False)
        """
        return not (
            self.keep_largest_foreground
            or self.keep_largest
            or self.min_voxels
            or self.min_volume_mm3
            or self.fill_holes
            or self.steps
        )

    @property
    def needs_probabilities(self) -> bool:
        """Whether a step reads the fused probabilities (``min_probability``).

        Examples:
            >>> step = ComponentStep("min_probability", 1, threshold=0.5, connectivity=3)
            >>> PostprocessingPlan(steps=(step,)).needs_probabilities
            True
        """
        return any(step.needs_probabilities for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (see the module docstring).

        Examples:
            >>> PostprocessingPlan(keep_largest=(2, 1)).to_dict()["keep_largest"]
            [1, 2]
        """
        return {
            "schema_version": SCHEMA_VERSION,
            "connectivity": self.connectivity,
            "keep_largest_foreground": self.keep_largest_foreground,
            "keep_largest": list(self.keep_largest),
            "min_voxels": {str(k): v for k, v in self.min_voxels.items()},
            "min_volume_mm3": {str(k): v for k, v in self.min_volume_mm3.items()},
            "fill_holes": list(self.fill_holes),
            "steps": [step.to_dict() for step in self.steps],
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "plan") -> PostprocessingPlan:
        """Build a plan from its JSON form, strictly: unknown keys at any level are errors.

        Raises:
            InputError: For a wrong ``schema_version``, an unknown or missing key or a bad value,
                with its key path (``metrics.steps[2].dice_after``) and the allowed keys.

        Examples:
            >>> PostprocessingPlan.from_dict({"schema_version": 1, "fill_holes": [1]}).fill_holes
            (1,)
            >>> PostprocessingPlan.from_dict({"schema_version": 2, "fill_hole": [1]}, source="p")
            Traceback (most recent call last):
            ...
            nnunet_ext.io.errors.InputError: p: fill_hole must be absent (allowed keys: ...
        """
        data = expect_mapping(data, source=source, where=None)
        if data.get("schema_version") not in READABLE_VERSIONS or isinstance(
            data.get("schema_version"), bool
        ):
            raise invalid_key(
                source,
                data,
                "schema_version",
                " or ".join(map(str, READABLE_VERSIONS)),
                fix="Write the plan with `nnunet-ext postprocess determine` (or save_plan).",
            )
        allowed = _KEYS if data["schema_version"] >= 2 else _KEYS - {"steps"}
        check_keys(data, source=source, where=None, allowed=allowed, required=("schema_version",))
        for key in ("keep_largest", "fill_holes", "steps"):
            if not isinstance(data.get(key, []), list):
                raise InputError(
                    source, "a list of label values > 0", describe(data.get(key)), key=key
                )
        for key in ("min_voxels", "min_volume_mm3", "metrics"):
            expect_mapping(data.get(key, {}), source=source, where=key)
        _check_metrics(data.get("metrics", {}), source)
        connectivity = data.get("connectivity")
        if connectivity is not None and (
            isinstance(connectivity, bool) or not isinstance(connectivity, int)
        ):
            raise InputError(source, "null or 1..3", describe(connectivity), key="connectivity")
        if not isinstance(data.get("keep_largest_foreground", False), bool):
            raise InputError(
                source,
                "true or false",
                describe(data.get("keep_largest_foreground")),
                key="keep_largest_foreground",
            )
        try:
            return cls(
                keep_largest_foreground=data.get("keep_largest_foreground", False),
                keep_largest=tuple(data.get("keep_largest", [])),
                min_voxels=dict(data.get("min_voxels", {})),
                min_volume_mm3=dict(data.get("min_volume_mm3", {})),
                fill_holes=tuple(data.get("fill_holes", [])),
                connectivity=connectivity,
                steps=_read_steps(data.get("steps", []), source),
                metrics=dict(data.get("metrics", {})),
                source=source,
            )
        except (TypeError, ValueError) as err:
            raise InputError(source, "a valid postprocessing plan", str(err).rstrip(".")) from err


#: Keys of a plan's ``metrics`` record (written by :func:`determine_plan`).
METRICS_KEYS = frozenset(
    {
        "rule",
        "num_cases",
        "label_ids",
        "dice_before",
        "dice_after",
        "steps",
        "metric",
        "judge",
        # only when determine_plan decided on a metric other than Dice
        "convention",
        "nsd_tolerance_mm",
        "before",
        "after",
        # only when determine_plan tried component rules (schema 2)
        "candidates",
        "component_rule",
    }
)
#: Keys of each entry of ``metrics.candidates`` (one component rule tried on one label).
CANDIDATE_KEYS = frozenset(
    {
        "step",
        "label",
        "to",
        "unit",
        "statistic",
        "metric",
        "thresholds",
        "in_sample",
        "baseline",
        "fold_choices",
        "held_out_gain",
        "held_out_by_label",
        "noise",
        "other_drop",
        "accepted",
        "chosen",
        "reason",
    }
)
#: Keys of each entry of ``metrics.steps``.
STEP_KEYS = frozenset(
    {
        "operation",
        "label",
        "dice_before",
        "dice_after",
        "accepted",
        "metric",
        "value_before",
        "value_after",
        "before",
        "after",
        # only when determine_plan judged the steps held out
        "held_out_gain",
        "noise",
        "other_drop",
        "fold_choices",
        "held_out_by_label",
        "reason",
    }
)


def _read_steps(steps: list[Any], source: str) -> tuple[ComponentStep, ...]:
    return tuple(
        ComponentStep.from_dict(step, source=source, where=key_path("steps", index))
        for index, step in enumerate(steps)
    )


def _check_metrics(metrics: Mapping[str, Any], source: str) -> None:
    check_keys(metrics, source=source, where="metrics", allowed=METRICS_KEYS)
    steps = metrics.get("steps", [])
    if not isinstance(steps, list):
        raise InputError(source, "a list", describe(steps), key="metrics.steps")
    candidates = metrics.get("candidates", [])
    if not isinstance(candidates, list):
        raise InputError(source, "a list", describe(candidates), key="metrics.candidates")
    for name, entries, allowed in (
        ("metrics.candidates", candidates, CANDIDATE_KEYS),
        ("metrics.steps", steps, STEP_KEYS),
    ):
        for index, entry in enumerate(entries):
            where = key_path(name, index)
            mapping = expect_mapping(entry, source=source, where=where)
            check_keys(mapping, source=source, where=where, allowed=allowed)


def _file_ending(input_dir: Path, file_ending: str | None) -> str:
    if file_ending is not None:
        if not file_ending.startswith("."):
            raise ValueError(f"file_ending must start with '.'; got {file_ending!r}.")
        return file_ending
    dataset_json = input_dir / "dataset.json"
    if dataset_json.is_file():
        return load_dataset_json(dataset_json).file_ending
    return ".nii.gz"


def save_plan(plan: PostprocessingPlan, path: str | os.PathLike[str]) -> Path:
    """Write ``plan`` as strict JSON, atomically, and return the path."""
    return write_json(path, plan.to_dict())


def load_plan(path: str | os.PathLike[str]) -> PostprocessingPlan:
    """Read a plan written by :func:`save_plan` (or by hand); the owner of this input kind.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: If it is not valid JSON or not a valid plan (unknown keys included).
    """
    return PostprocessingPlan.from_dict(load_json(path), source=str(path))


def _voxel_volume(spacing: Sequence[float] | None, ndim: int, needed_by: str) -> float:
    if (
        spacing is None
        or len(spacing) != ndim
        or not all(math.isfinite(s) and s > 0 for s in spacing)
    ):
        raise ValueError(
            f"spacing must be {ndim} positive numbers to use {needed_by}; got {spacing!r}."
        )
    return float(np.prod(np.asarray(spacing, dtype=np.float64)))


def apply_plan(
    labels: NDArray[np.integer[Any]],
    plan: PostprocessingPlan,
    *,
    spacing: Sequence[float] | None = None,
    probabilities: NDArray[np.floating[Any]] | None = None,
) -> NDArray[np.integer[Any]]:
    """Run the plan's steps on one label map, in the documented order.

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        plan: The steps.
        spacing: Voxel size (any axis order; only the product is used); needed for
            ``min_volume_mm3`` and sizes in ``mm3``.
        probabilities: Fused probabilities ``(C, *labels.shape)`` (nnU-Net's ``CASE.npz``);
            needed by ``min_probability`` steps.

    Returns:
        A new array of the same shape and dtype.

    Raises:
        ValueError: If ``min_volume_mm3`` or a size in mm3 is used without a valid ``spacing``,
            a ``min_probability`` step without ``probabilities`` (naming the step), or the
            connectivity exceeds the array's dimensions.

    Examples:
        >>> labels = np.array([[1, 1, 1, 0, 1],
        ...                    [1, 0, 1, 0, 0],
        ...                    [1, 1, 1, 0, 0]], dtype=np.uint8)
        >>> apply_plan(labels, PostprocessingPlan(keep_largest=(1,), fill_holes=(1,)))
        array([[1, 1, 1, 0, 0],
               [1, 1, 1, 0, 0],
               [1, 1, 1, 0, 0]], dtype=uint8)
    """
    out = labels
    connectivity = plan.connectivity
    if connectivity is not None:
        check_connectivity(connectivity, ndim=labels.ndim)
    if plan.needs_probabilities and probabilities is None:
        step = next(s for s in plan.steps if s.needs_probabilities)
        apply_component_step(labels, step)  # the error naming the step
    in_mm3 = [s for s in plan.steps if s.min_size is not None and s.unit == "mm3"]
    voxel_volume = (
        _voxel_volume(spacing, labels.ndim, f"step '{in_mm3[0].describe()}'") if in_mm3 else None
    )
    for step in plan.steps:
        out = apply_component_step(
            out, step, voxel_volume=voxel_volume, probabilities=probabilities
        )
    if plan.keep_largest_foreground:
        out = keep_largest_foreground_component(out, connectivity=connectivity)
    if plan.keep_largest:
        out = keep_largest_component(out, label_ids=plan.keep_largest, connectivity=connectivity)
    thresholds = dict(plan.min_voxels)
    if plan.min_volume_mm3:
        volume = _voxel_volume(spacing, labels.ndim, "min_volume_mm3")
        thresholds.update({k: v / volume for k, v in plan.min_volume_mm3.items()})
    if thresholds:
        out = remove_small_components(out, min_voxels=thresholds, connectivity=connectivity)
    if plan.fill_holes:
        out = fill_holes(out, label_ids=plan.fill_holes)
    return out.copy() if out is labels else out
