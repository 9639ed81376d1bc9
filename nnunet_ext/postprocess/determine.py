"""Choose a postprocessing plan on validation predictions: a greedy search, label by label.

:func:`determine_plan` reads every prediction/reference pair once, tries the component rules
(:mod:`~nnunet_ext.postprocess.component_search`, judged on held-out cases), then the plan's
other steps in their order (:mod:`~nnunet_ext.postprocess.step_search`), each on top of what was
accepted so far, and keeps a step only when the objective
(:mod:`nnunet_ext.postprocess.objective`) improves: in-sample (nnU-Net's rule) or also held out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._parallel import map_cases
from nnunet_ext.io import list_case_files, load_dataset_json, read_labels
from nnunet_ext.postprocess.component_search import RULES, CaseArrays, ComponentSearch
from nnunet_ext.postprocess.components import (
    check_connectivity,
    keep_largest_component,
    remove_small_components,
)
from nnunet_ext.postprocess.heldout import RULE_TEXT
from nnunet_ext.postprocess.holes import fill_holes
from nnunet_ext.postprocess.objective import Objective
from nnunet_ext.postprocess.plan import PostprocessingPlan, _file_ending, _ids, _sizes
from nnunet_ext.postprocess.probability_inputs import (
    find_probability_files,
    read_case_probabilities,
)
from nnunet_ext.postprocess.step_search import JUDGES, StepSearch
from nnunet_ext.postprocess.steps import UNITS

__all__ = ["determine_plan"]

logger = logging.getLogger(__name__)


def _load_pair(
    job: tuple[str, str, str | None],
) -> tuple[NDArray[Any], NDArray[Any], tuple[float, ...], NDArray[Any] | None]:
    prediction = read_labels(job[0])
    reference = read_labels(job[1])
    if prediction.array.shape != reference.array.shape:
        raise ValueError(
            f"{job[0]}: prediction shape {prediction.array.shape} must equal the reference "
            f"{job[1]} shape {reference.array.shape}."
        )
    probabilities = None
    if job[2] is not None:
        probabilities = read_case_probabilities(job[2], prediction.array.shape)
    return prediction.array, reference.array, reference.spacing, probabilities


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
    component_rules: Sequence[str] = (),
    probabilities_dir: str | os.PathLike[str] | None = None,
    size_unit: str = "voxels",
    judge: str | None = None,
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

    ``component_rules`` are tried first, on the predictions as they are, and judged on
    held-out cases (:mod:`nnunet_ext.postprocess.component_search`): candidate thresholds come
    from the references, and a rule is kept for a label only when its held-out gain on
    ``metric`` exceeds the noise by tune's rule and no other label drops beyond its noise.
    ``plan.metrics["candidates"]`` lists every rule and label tried with its thresholds,
    in-sample gains, each fold's choice and the held-out verdict; each kept step records why.
    Any metric the objective accepts works the same way (Dice and IoU are computed from the
    component tables, any other by re-labelling the components).

    ``judge`` says how the other steps (1-4) are judged. ``in-sample`` is nnU-Net's rule above,
    on all CV cases. ``held-out`` also asks of each step what the component rules must pass: over
    5 folds each fold takes the step when it improves the other folds' mean, and the held-out
    gain must count by tune's rule with no label dropping beyond its noise
    (:mod:`~nnunet_ext.postprocess.step_search`). The default is ``held-out`` with
    ``component_rules`` and ``in-sample`` without: a plain ``determine`` decides as
    ``nnUNetv2_determine_postprocessing`` does, which an nnU-Net user compares against and
    which still decides on 2-4 CV cases, where a held-out gain can never beat the noise; asked
    for held-out component rules, the whole plan is held to the same rule, since a step chosen
    in-sample can win by a hair on the CV cases and lose on new ones (on one of the demo's
    draws keep-largest-foreground and fill-holes, taken in-sample on 4 of 5 folds, cost the
    held-out cases 0.006-0.013 Dice).

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
        component_rules: Component rules to try: ``relabel_small``, ``min_probability``
            (needs ``probabilities_dir``), ``volume_gate``, ``keep_top_k`` (any subset).
        probabilities_dir: Folder of the predictions' ``CASE.npz`` (fused probabilities).
        size_unit: Unit of the size thresholds chosen: ``voxels`` or ``mm3``.
        judge: ``in-sample`` or ``held-out`` for steps 1-4; ``None``: ``held-out`` when
            ``component_rules`` are given, else ``in-sample``.

    Returns:
        The accepted plan, with ``metrics``.

    Raises:
        NotADirectoryError: If a folder is missing.
        ValueError: If a prediction has no reference, shapes differ, or no case is found.
    """
    objective = Objective(
        metric, nsd_tolerance=nsd_tolerance, convention=convention, ignore_label=ignore_label
    )
    predictions_root = Path(prediction_dir)
    predicted, references = _matched_cases(predictions_root, Path(reference_dir), file_ending)
    min_candidates = _sizes(min_voxels or {}, "min_voxels")
    ids = _given_label_ids(label_ids, predictions_root)
    rules = _check_rules(component_rules, probabilities_dir, size_unit)
    if judge is None:
        judge = "held-out" if rules else "in-sample"
    if judge not in JUDGES:
        raise ValueError(f"judge must be in-sample or held-out; got {judge!r}.")
    if "min_probability" not in rules:
        probabilities_dir = None  # only min_probability reads them
    cases = sorted(predicted)
    loaded = _load_cases(predicted, references, cases, probabilities_dir, num_workers)
    truth = [r for _, r, _, _ in loaded]
    if ids is None:  # neither given nor in a dataset.json: every label of the references
        ids = sorted({int(v) for r in truth for v in np.unique(r) if v != 0})
    if not ids:
        raise ValueError("label_ids must name at least one foreground label; none found.")
    for array, _, _, _ in loaded:
        check_connectivity(connectivity, ndim=array.ndim)
    spacings = [tuple(reversed(s)) for _, _, s, _ in loaded]
    current = [p for p, _, _, _ in loaded]
    components = None
    if rules:
        probabilities = None if probabilities_dir is None else _probabilities(loaded, cases, ids)
        components = ComponentSearch(
            objective,
            CaseArrays(truth, current, spacings, ids, probabilities),
            connectivity=check_connectivity(connectivity, ndim=truth[0].ndim),
            unit=size_unit,
            ignore_label=ignore_label,
        )
        del loaded
        components.run(rules)
        current = components.current
    search = StepSearch(objective, truth, current, spacings, ids, judge=judge)
    _try_steps(
        search,
        connectivity,
        foreground=try_keep_largest_foreground,
        keep_largest=try_keep_largest,
        min_candidates=min_candidates,
        fill=try_fill_holes,
    )
    return PostprocessingPlan(
        keep_largest_foreground=search.accepted["keep_largest_foreground"],
        keep_largest=tuple(search.accepted["keep_largest"]),
        min_voxels=search.accepted["min_voxels"],
        fill_holes=tuple(search.accepted["fill_holes"]),
        connectivity=connectivity,
        steps=() if components is None else tuple(components.accepted),
        metrics=search.metrics(len(cases)) | _component_metrics(components),
    )


def _probabilities(
    loaded: list[tuple[NDArray[Any], NDArray[Any], tuple[float, ...], NDArray[Any] | None]],
    cases: list[str],
    ids: list[int],
) -> list[NDArray[Any]]:
    """Each case's probabilities, checked to hold a channel for every label."""
    out = []
    for case, (*_, probabilities) in zip(cases, loaded, strict=True):
        if probabilities is None or probabilities.shape[0] <= max(ids):
            channels = None if probabilities is None else probabilities.shape[0]
            raise ValueError(
                f"probabilities of case {case} must hold a channel for every label up to "
                f"{max(ids)}; got {channels} channel(s). Pass the probabilities of these labels."
            )
        out.append(probabilities)
    return out


def _load_cases(
    predicted: Mapping[str, Path],
    references: Mapping[str, Path],
    cases: list[str],
    probabilities_dir: str | os.PathLike[str] | None,
    num_workers: int,
) -> list[tuple[NDArray[Any], NDArray[Any], tuple[float, ...], NDArray[Any] | None]]:
    """Every case's prediction, reference, reference spacing and probabilities (or ``None``)."""
    npz: dict[str, Path] = {}
    if probabilities_dir is not None:
        npz = find_probability_files(probabilities_dir, cases)
    jobs = [
        (str(predicted[c]), str(references[c]), str(npz[c]) if c in npz else None) for c in cases
    ]
    return map_cases(_load_pair, jobs, num_workers=num_workers, desc="load")


def _check_rules(
    rules: Sequence[str], probabilities_dir: str | os.PathLike[str] | None, size_unit: str
) -> tuple[str, ...]:
    """The component rules to try, checked (``min_probability`` needs the probabilities)."""
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        raise ValueError(f"component_rules must be among {', '.join(RULES)}; got {unknown[0]!r}.")
    if "min_probability" in rules and probabilities_dir is None:
        raise ValueError(
            "component_rules min_probability needs the fused probabilities; pass "
            "probabilities_dir (the folder of the predictions' CASE.npz)."
        )
    if size_unit not in UNITS:
        raise ValueError(f"size_unit must be voxels or mm3; got {size_unit!r}.")
    return tuple(rules)


def _component_metrics(components: ComponentSearch | None) -> dict[str, Any]:
    if components is None:
        return {}
    return {
        "component_rule": (
            "component rules are tried first, per label, on held-out cases: each of "
            f"{int(components.folds.max()) + 1} folds chooses a threshold on the other cases; "
            f"a rule is kept when {RULE_TEXT} (tune's rule; Dice, IoU, NSD paired as tune "
            "pairs them)"
        ),
        "candidates": components.records,
    }


def _try_steps(
    search: StepSearch,
    connectivity: int | None,
    *,
    foreground: bool,
    keep_largest: bool,
    min_candidates: Mapping[int, float],
    fill: bool,
) -> None:
    """Try the candidate steps in the plan's order, each on top of those accepted so far."""
    ids = search.ids
    if foreground:
        search.try_foreground(connectivity)
    for label in ids if keep_largest else []:
        largest = partial(keep_largest_component, label_ids=[label], connectivity=connectivity)
        search.try_step("keep_largest", label, largest)
    for label, size in min_candidates.items():
        if label not in ids:
            raise ValueError(f"min_voxels label {label} must be one of label_ids {ids}.")
        small = partial(
            remove_small_components, min_voxels={label: size}, connectivity=connectivity
        )
        search.try_step("min_voxels", label, small, size)
    for label in ids if fill else []:
        search.try_step("fill_holes", label, partial(fill_holes, label_ids=[label]))


def _given_label_ids(label_ids: Sequence[int] | None, predictions_root: Path) -> list[int] | None:
    """``label_ids`` checked against the predictions' dataset.json, else its foreground labels.

    ``None`` when neither is there.
    """
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
