"""A postprocessing plan: which operation runs on which label, stored as JSON (never pickled).

Steps always run in this order:

1. keep the largest component of the union of foreground labels (``keep_largest_foreground``),
2. keep the largest component per label (``keep_largest``),
3. remove components smaller than a size, per label (``min_voxels`` / ``min_volume_mm3``),
4. fill holes per label (``fill_holes``; only background changes).

The JSON form (``schema_version`` 1)::

    {"schema_version": 1, "connectivity": null, "keep_largest_foreground": false,
     "keep_largest": [1, 2], "min_voxels": {"3": 20}, "min_volume_mm3": {},
     "fill_holes": [1, 2], "metrics": {...}}

``metrics`` is informational: :func:`nnunet_ext.postprocess.determine_plan` records the Dice
before and after each tried operation there.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.postprocess.components import (
    check_connectivity,
    keep_largest_component,
    keep_largest_foreground_component,
    remove_small_components,
)
from nnunet_ext.postprocess.holes import fill_holes

__all__ = [
    "SCHEMA_VERSION",
    "PostprocessingPlan",
    "apply_plan",
    "determine_plan",
    "load_plan",
    "save_plan",
]

logger = logging.getLogger(__name__)

#: Version of the plan's JSON layout.
SCHEMA_VERSION = 1

_KEYS = {
    "schema_version",
    "connectivity",
    "keep_largest_foreground",
    "keep_largest",
    "min_voxels",
    "min_volume_mm3",
    "fill_holes",
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
    metrics: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_largest", _ids(self.keep_largest, "keep_largest"))
        object.__setattr__(self, "fill_holes", _ids(self.fill_holes, "fill_holes"))
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
        )

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
            >>> PostprocessingPlan.from_dict({"schema_version": 1, "fill_hole": [1]}, source="p")
            Traceback (most recent call last):
            ...
            nnunet_ext.io.errors.InputError: p: fill_hole must be absent (allowed keys: ...
        """
        from nnunet_ext.io.errors import InputError
        from nnunet_ext.io.schema import check_keys, describe, expect_mapping, invalid_key

        data = expect_mapping(data, source=source, where=None)
        if data.get("schema_version") != SCHEMA_VERSION or isinstance(
            data.get("schema_version"), bool
        ):
            raise invalid_key(
                source,
                data,
                "schema_version",
                str(SCHEMA_VERSION),
                fix="Write the plan with `nnunet-ext postprocess determine` (or save_plan).",
            )
        check_keys(data, source=source, where=None, allowed=_KEYS, required=("schema_version",))
        for key in ("keep_largest", "fill_holes"):
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
        # only when determine_plan decided on a metric other than Dice
        "convention",
        "nsd_tolerance_mm",
        "before",
        "after",
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
    }
)


def _check_metrics(metrics: Mapping[str, Any], source: str) -> None:
    from nnunet_ext.io.errors import InputError
    from nnunet_ext.io.schema import check_keys, describe, expect_mapping, key_path

    check_keys(metrics, source=source, where="metrics", allowed=METRICS_KEYS)
    steps = metrics.get("steps", [])
    if not isinstance(steps, list):
        raise InputError(source, "a list", describe(steps), key="metrics.steps")
    for index, step in enumerate(steps):
        where = key_path("metrics.steps", index)
        check_keys(
            expect_mapping(step, source=source, where=where),
            source=source,
            where=where,
            allowed=STEP_KEYS,
        )


def _file_ending(input_dir: Path, file_ending: str | None) -> str:
    if file_ending is not None:
        if not file_ending.startswith("."):
            raise ValueError(f"file_ending must start with '.'; got {file_ending!r}.")
        return file_ending
    dataset_json = input_dir / "dataset.json"
    if dataset_json.is_file():
        from nnunet_ext.io import load_dataset_json

        return load_dataset_json(dataset_json).file_ending
    return ".nii.gz"


def save_plan(plan: PostprocessingPlan, path: str | os.PathLike[str]) -> Path:
    """Write ``plan`` as strict JSON, atomically, and return the path."""
    from nnunet_ext.io import write_json

    return write_json(path, plan.to_dict())


def load_plan(path: str | os.PathLike[str]) -> PostprocessingPlan:
    """Read a plan written by :func:`save_plan` (or by hand); the owner of this input kind.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: If it is not valid JSON or not a valid plan (unknown keys included).
    """
    from nnunet_ext.io import load_json

    return PostprocessingPlan.from_dict(load_json(path), source=str(path))


def apply_plan(
    labels: NDArray[np.integer[Any]],
    plan: PostprocessingPlan,
    *,
    spacing: Sequence[float] | None = None,
) -> NDArray[np.integer[Any]]:
    """Run the plan's steps on one label map, in the documented order.

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        plan: The steps.
        spacing: Voxel size (any axis order; only the product is used); needed for
            ``min_volume_mm3``.

    Returns:
        A new array of the same shape and dtype.

    Raises:
        ValueError: If ``min_volume_mm3`` is used without a valid ``spacing``, or the
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
    if plan.keep_largest_foreground:
        out = keep_largest_foreground_component(out, connectivity=connectivity)
    if plan.keep_largest:
        out = keep_largest_component(out, label_ids=plan.keep_largest, connectivity=connectivity)
    thresholds = dict(plan.min_voxels)
    if plan.min_volume_mm3:
        if (
            spacing is None
            or len(spacing) != labels.ndim
            or not all(math.isfinite(s) and s > 0 for s in spacing)
        ):
            raise ValueError(
                f"spacing must be {labels.ndim} positive numbers to use min_volume_mm3; "
                f"got {spacing!r}."
            )
        voxel_volume = float(np.prod(np.asarray(spacing, dtype=np.float64)))
        thresholds.update({k: v / voxel_volume for k, v in plan.min_volume_mm3.items()})
    if thresholds:
        out = remove_small_components(out, min_voxels=thresholds, connectivity=connectivity)
    if plan.fill_holes:
        out = fill_holes(out, label_ids=plan.fill_holes)
    return out.copy() if out is labels else out


def _mean(values: NDArray[np.float64]) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _per_label_means(dice: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.array([_mean(dice[:, i]) for i in range(dice.shape[1])], dtype=np.float64)


def _load_pair(
    job: tuple[str, str],
) -> tuple[NDArray[Any], NDArray[Any], tuple[float, ...], tuple[float, ...]]:
    from nnunet_ext.io import read_labels

    prediction = read_labels(job[0])
    reference = read_labels(job[1])
    if prediction.array.shape != reference.array.shape:
        raise ValueError(
            f"{job[0]}: prediction shape {prediction.array.shape} must equal the reference "
            f"{job[1]} shape {reference.array.shape}."
        )
    return prediction.array, reference.array, prediction.spacing, reference.spacing


class _Objective:
    """What ``determine_plan`` decides on: one metric (higher or lower better) or a score file.

    ``values`` are metric key to ``(cases, labels)`` arrays; Dice is always among them.
    """

    def __init__(
        self,
        metric: str,
        *,
        nsd_tolerance: float,
        convention: str,
        ignore_label: int | None,
    ) -> None:
        from nnunet_ext.evaluate.conventions import get_convention
        from nnunet_ext.evaluate.measures import HIGHER_IS_BETTER
        from nnunet_ext.evaluate.score import load_score

        get_convention(convention)
        self.name = metric
        self.score = None
        if metric.startswith("score:"):
            self.score = load_score(metric[len("score:") :])
            needed = set(self.score.metrics)
        elif metric in HIGHER_IS_BETTER:
            needed = {metric}
        else:
            raise ValueError(
                f"metric must be one of {', '.join(HIGHER_IS_BETTER)} or score:SCORE.json; "
                f"got {metric!r}."
            )
        self.higher_is_better = True if self.score else HIGHER_IS_BETTER[metric]
        # Dice alone keeps today's cost; any other choice reports the boundary metrics too.
        shown = ["dice"] if metric == "dice" else ["dice", "hd95", "assd", "nsd"]
        self.keys = [*shown, *sorted(needed - set(shown))]
        self.nsd_tolerance = nsd_tolerance
        self.convention = convention
        self.ignore_label = ignore_label

    def values(
        self,
        truth: Sequence[NDArray[Any]],
        predictions: Sequence[NDArray[Any]],
        label_ids: Sequence[int],
        spacings: Sequence[tuple[float, ...]],
    ) -> dict[str, NDArray[np.float64]]:
        from nnunet_ext.evaluate.measures import apply_convention, boundary_values
        from nnunet_ext.evaluate.metrics import (
            FN,
            FP,
            TP,
            confusion_counts,
            dice_from_counts,
            iou_from_counts,
        )

        rows: dict[str, list[NDArray[np.float64]]] = {k: [] for k in self.keys}
        for reference, prediction, spacing in zip(truth, predictions, spacings, strict=True):
            counts = confusion_counts(
                reference, prediction, label_ids=list(label_ids), ignore_label=self.ignore_label
            )
            case: dict[str, NDArray[np.float64]] = {
                "dice": np.asarray(
                    dice_from_counts(counts[:, TP], counts[:, FP], counts[:, FN]), np.float64
                ),
                "iou": np.asarray(
                    iou_from_counts(counts[:, TP], counts[:, FP], counts[:, FN]), np.float64
                ),
            }
            case.update(
                boundary_values(
                    reference,
                    prediction,
                    list(label_ids),
                    spacing,
                    self.keys,
                    nsd_tolerance=self.nsd_tolerance,
                    ignore_label=self.ignore_label,
                )
            )
            case = apply_convention(
                case, counts, self.convention, shape=reference.shape, spacing=spacing
            )
            for key in self.keys:
                rows[key].append(case[key])
        return {k: np.stack(v) if v else np.zeros((0, len(label_ids))) for k, v in rows.items()}

    def label_value(self, values: dict[str, NDArray[np.float64]], j: int) -> float:
        """The objective of label column ``j`` (mean over cases, NaN ones left out)."""
        if self.score is not None:
            return float(self.score.label_scores({k: v[:, [j]] for k, v in values.items()})[0])
        return _mean(values[self.name][:, j])

    def undefined(self, values: dict[str, NDArray[np.float64]], j: int) -> int:
        """Cases where a metric the objective needs is undefined, for label column ``j``."""
        keys = self.score.metrics if self.score is not None else (self.name,)
        return int(sum(np.isnan(values[k][:, j]).sum() for k in keys))

    def better(self, new: float, old: float) -> bool:
        """Strictly better in the objective's direction (NaN is never better)."""
        if math.isnan(new):
            return False
        if math.isnan(old):
            return True
        return new > old if self.higher_is_better else new < old

    def total(self, label_values: Sequence[float], label_ids: Sequence[int]) -> float:
        """The objective over all labels: the score, or the mean of the label means."""
        array = np.asarray(label_values, dtype=np.float64)
        if self.score is not None:
            return self.score.combine(array, [str(k) for k in label_ids])
        return _mean(array)


def determine_plan(
    prediction_dir: str | os.PathLike[str],
    reference_dir: str | os.PathLike[str],
    *,
    label_ids: Sequence[int] | None = None,
    try_keep_largest_foreground: bool = True,
    try_keep_largest: bool = True,
    try_fill_holes: bool = True,
    min_voxels: Mapping[int, float] | None = None,
    connectivity: int | None = None,
    ignore_label: int | None = None,
    num_workers: int = 1,
    file_ending: str | None = None,
    metric: str = "dice",
    nsd_tolerance: float = 1.0,
    convention: str = "nan",
) -> PostprocessingPlan:
    """Choose a plan on validation predictions, per label, by a metric (default: Dice, as nnU-Net).

    Candidates are tried in the plan's step order, each on top of what was accepted so far:

    1. largest foreground component: kept only if the mean foreground Dice improves strictly and
       no label's mean Dice decreases;
    2. per label, largest component; 3. per label, ``min_voxels[label]``; 4. per label, fill
       holes: each kept only if that label's mean Dice (NaN cases left out) improves strictly.

    With ``metric`` other than Dice the same rule applies to that metric (lower is better for
    distances), and a step is also refused if it makes the metric undefined in more cases (an
    emptied prediction must not drop out of a distance mean). Metrics come from
    :mod:`nnunet_ext.evaluate` (Dice NaN when reference and prediction are empty; distances in
    mm from each reference's spacing; empty cases per ``convention``). Before/after means of
    every tried step, for every computed metric (Dice; with another ``metric`` also HD95, ASSD
    and NSD), are recorded in ``plan.metrics``.

    Args:
        prediction_dir: Folder of predicted label files. Not modified.
        reference_dir: Folder of reference label files with the same case IDs. Not modified.
        label_ids: Labels to consider; default: the foreground labels of
            ``prediction_dir/dataset.json``, else every non-zero value in the references.
        try_keep_largest_foreground: Try step 1.
        try_keep_largest: Try step 2.
        try_fill_holes: Try step 4.
        min_voxels: Label to a candidate minimum component size (voxels) to try in step 3.
        connectivity: 1..ndim (scipy convention) for component steps; ``None`` is full.
        ignore_label: Reference value left out of the Dice counts (nnU-Net's ignore label).
        num_workers: Processes used to read the files.
        file_ending: Label file ending; default from ``dataset.json``, else ``.nii.gz``.
        metric: ``dice``, ``iou``, ``hd``, ``hd95``, ``hd95_pooled``, ``assd``, ``nsd`` or
            ``score:SCORE.json`` (a score file of :mod:`nnunet_ext.evaluate.score`).
        nsd_tolerance: NSD tolerance in mm.
        convention: Empty-case convention of :mod:`nnunet_ext.evaluate.conventions`.

    Returns:
        The accepted plan, with ``metrics``.

    Raises:
        NotADirectoryError: If a folder is missing.
        ValueError: If a prediction has no reference, shapes differ, or no case is found.
    """
    from nnunet_ext._parallel import map_cases

    objective = _Objective(
        metric, nsd_tolerance=nsd_tolerance, convention=convention, ignore_label=ignore_label
    )
    predictions_root = Path(prediction_dir)
    predicted, references = _matched_cases(predictions_root, Path(reference_dir), file_ending)
    min_candidates = _sizes(min_voxels or {}, "min_voxels")
    ids = _given_label_ids(label_ids, predictions_root)
    cases = sorted(predicted)
    loaded = map_cases(
        _load_pair,
        [(str(predicted[c]), str(references[c])) for c in cases],
        num_workers=num_workers,
        desc="load",
    )
    truth = [r for _, r, _, _ in loaded]
    if ids is None:  # neither given nor in a dataset.json: every label of the references
        ids = sorted({int(v) for r in truth for v in np.unique(r) if v != 0})
    if not ids:
        raise ValueError("label_ids must name at least one foreground label; none found.")
    for array, _, _, _ in loaded:
        check_connectivity(connectivity, ndim=array.ndim)
    search = _PlanSearch(
        objective,
        truth,
        [p for p, _, _, _ in loaded],
        [tuple(reversed(s)) for _, _, _, s in loaded],
        ids,
    )
    if try_keep_largest_foreground:
        search.try_foreground(connectivity)
    for label in ids if try_keep_largest else []:
        search.try_step(
            "keep_largest",
            label,
            lambda p, lab=label: keep_largest_component(
                p, label_ids=[lab], connectivity=connectivity
            ),
        )
    for label, size in min_candidates.items():
        if label not in ids:
            raise ValueError(f"min_voxels label {label} must be one of label_ids {ids}.")
        search.try_step(
            "min_voxels",
            label,
            lambda p, lab=label, s=size: remove_small_components(
                p, min_voxels={lab: s}, connectivity=connectivity
            ),
            size,
        )
    for label in ids if try_fill_holes else []:
        search.try_step("fill_holes", label, lambda p, lab=label: fill_holes(p, label_ids=[lab]))
    return PostprocessingPlan(
        keep_largest_foreground=search.accepted["keep_largest_foreground"],
        keep_largest=tuple(search.accepted["keep_largest"]),
        min_voxels=search.accepted["min_voxels"],
        fill_holes=tuple(search.accepted["fill_holes"]),
        connectivity=connectivity,
        metrics=search.metrics(len(cases)),
    )


def _given_label_ids(label_ids: Sequence[int] | None, predictions_root: Path) -> list[int] | None:
    """``label_ids`` checked against the predictions' dataset.json, else its foreground labels.

    ``None`` when neither is there.
    """
    from nnunet_ext.io import load_dataset_json

    dataset_json = predictions_root / "dataset.json"
    spec = load_dataset_json(dataset_json) if dataset_json.is_file() else None
    if label_ids is not None:
        ids = list(_ids(label_ids, "label_ids"))
        if spec is not None and not spec.has_regions:
            for label in ids:
                spec.resolve(label)  # InputError listing the defined labels
        return ids
    if spec is not None:
        return sorted(v for v in spec.foreground.values() if isinstance(v, int))
    return None


def _matched_cases(
    predictions_root: Path, references_root: Path, file_ending: str | None
) -> tuple[dict[str, Path], dict[str, Path]]:
    """The prediction and reference files by case; every prediction must have a reference."""
    from nnunet_ext.io import list_case_files

    for name, folder in (("prediction_dir", predictions_root), ("reference_dir", references_root)):
        if not folder.is_dir():
            raise NotADirectoryError(
                f"{name} must be a folder of label files; got {str(folder)!r}."
            )
    ending = _file_ending(predictions_root, file_ending)
    predicted, _ = list_case_files(predictions_root, ending)
    references, _ = list_case_files(references_root, ending)
    if not predicted:
        raise ValueError(f"prediction_dir {str(predictions_root)!r} holds no '*{ending}' files.")
    unmatched = sorted(set(predicted) - set(references))
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} prediction(s) have no reference in {str(references_root)!r}: "
            f"{', '.join(unmatched[:5])}. Pass the matching reference folder."
        )
    if set(references) - set(predicted):
        logger.warning(
            "%d reference case(s) have no prediction; deciding on the %d predicted cases only",
            len(set(references) - set(predicted)),
            len(predicted),
        )
    return predicted, references


def _label_means(vals: dict[str, NDArray[np.float64]], j: int) -> dict[str, float]:
    return {k: _mean(v[:, j]) for k, v in vals.items()}


def _foreground_means(vals: dict[str, NDArray[np.float64]]) -> dict[str, float]:
    return {k: _mean(_per_label_means(v)) for k, v in vals.items()}


class _PlanSearch:
    """The greedy search of :func:`determine_plan`.

    It holds the current predictions, their metric values per case and label, and every tried
    step with its before/after means.
    """

    def __init__(
        self,
        objective: _Objective,
        truth: list[NDArray[Any]],
        current: list[NDArray[Any]],
        spacings: list[tuple[float, ...]],
        ids: list[int],
    ) -> None:
        self.objective, self.truth, self.current = objective, truth, current
        self.spacings, self.ids = spacings, ids
        self.values = objective.values(truth, current, ids, spacings)
        self.label_values = [objective.label_value(self.values, j) for j in range(len(ids))]
        self.before_all = {str(k): _label_means(self.values, j) for j, k in enumerate(ids)}
        self.steps: list[dict[str, Any]] = []
        self.accepted: dict[str, Any] = {
            "keep_largest_foreground": False,
            "keep_largest": [],
            "min_voxels": {},
            "fill_holes": [],
        }

    def _record(
        self,
        operation: str,
        label: int | None,
        values: tuple[float, float],
        means: tuple[dict[str, float], dict[str, float]],
        ok: bool,
    ) -> None:
        self.steps.append(
            {
                "operation": operation,
                "label": label,
                "dice_before": means[0]["dice"],
                "dice_after": means[1]["dice"],
                "metric": self.objective.name,
                "value_before": values[0],
                "value_after": values[1],
                "before": means[0],
                "after": means[1],
                "accepted": ok,
            }
        )

    def try_foreground(self, connectivity: int | None) -> None:
        """Keep the largest foreground component if the total improves and no label worsens."""
        objective, ids = self.objective, self.ids
        candidate = [
            keep_largest_foreground_component(p, connectivity=connectivity) for p in self.current
        ]
        new_values = objective.values(self.truth, candidate, ids, self.spacings)
        new_label_values = [objective.label_value(new_values, j) for j in range(len(ids))]
        old_total = objective.total(self.label_values, ids)
        new_total = objective.total(new_label_values, ids)
        no_worse = not any(  # "old better than new" for some label
            objective.better(old, new)
            for old, new in zip(self.label_values, new_label_values, strict=True)
        )
        more_undefined = any(
            objective.undefined(new_values, j) > objective.undefined(self.values, j)
            for j in range(len(ids))
        )
        ok = objective.better(new_total, old_total) and no_worse and not more_undefined
        means = (_foreground_means(self.values), _foreground_means(new_values))
        self._record("keep_largest_foreground", None, (old_total, new_total), means, ok)
        if ok:
            self.current, self.values = candidate, new_values
            self.label_values = new_label_values
            self.accepted["keep_largest_foreground"] = True

    def try_step(self, operation: str, label: int, apply: Any, size: float | None = None) -> None:
        """Apply one per-label step if that label's mean improves strictly (see the rule)."""
        objective, index = self.objective, self.ids.index(label)
        candidate = [apply(p) for p in self.current]
        new_column = objective.values(self.truth, candidate, [label], self.spacings)
        old_value = self.label_values[index]
        new_value = objective.label_value(new_column, 0)
        old_column = {k: v[:, [index]] for k, v in self.values.items()}
        ok = objective.better(new_value, old_value) and objective.undefined(
            new_column, 0
        ) <= objective.undefined(old_column, 0)
        means = (_label_means(old_column, 0), _label_means(new_column, 0))
        self._record(operation, label, (old_value, new_value), means, ok)
        if not ok:
            return
        self.current = candidate
        self.values = {k: v.copy() for k, v in self.values.items()}
        for k in self.values:
            self.values[k][:, index] = new_column[k][:, 0]
        self.label_values[index] = new_value
        if operation == "min_voxels":
            self.accepted["min_voxels"][label] = size
        else:
            self.accepted[operation].append(label)

    def metrics(self, num_cases: int) -> dict[str, Any]:
        """The plan's ``metrics``: the rule, before/after means and every tried step."""
        objective, ids, values = self.objective, self.ids, self.values
        metrics = {
            "rule": f"accept a step if the label's mean {objective.name} improves strictly "
            f"({'higher' if objective.higher_is_better else 'lower'} is better; foreground step: "
            "the mean over labels improves and no label gets worse); NaN cases left out of means"
            + ("" if objective.name == "dice" else "; refused if more cases become undefined"),
            "metric": objective.name,
            "num_cases": num_cases,
            "label_ids": ids,
            "dice_before": {k: v["dice"] for k, v in self.before_all.items()},
            "dice_after": {str(k): _mean(values["dice"][:, j]) for j, k in enumerate(ids)},
            "steps": self.steps,
        }
        if objective.name != "dice":
            metrics.update(
                convention=objective.convention,
                nsd_tolerance_mm=objective.nsd_tolerance,
                before=self.before_all,
                after={str(k): _label_means(values, j) for j, k in enumerate(ids)},
            )
        return metrics
