"""Apply a postprocessing plan to a folder of label files (nnU-Net prediction folder layout).

Every output is ``uint8`` with the input's spacing, origin and direction; labels stored as floats
are repaired when within 1e-3 of an integer, otherwise the run stops with an error naming the
file. Inputs are never modified. Outputs are written under a temporary name and renamed, a rerun
skips cases already done with the same plan, and if any case fails, the outputs written by that
run are removed again so no partial result is left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._parallel import Executor, map_cases
from nnunet_ext.io import (
    InputError,
    LabelSpec,
    list_case_files,
    load_dataset_json,
    read_labels,
    remove_stale_temporaries,
    write_json,
    write_labels,
)
from nnunet_ext.io.labels import MAX_UINT8_LABEL
from nnunet_ext.postprocess.plan import PostprocessingPlan, _file_ending, apply_plan, load_plan
from nnunet_ext.postprocess.probability_inputs import (
    find_probability_files,
    read_case_probabilities,
)

__all__ = [
    "PLAN_RECORD",
    "FolderResult",
    "postprocess_file",
    "postprocess_folder",
    "resolve_plan",
]

logger = logging.getLogger(__name__)

#: File in the output folder recording the plan that produced it (for resume checks).
PLAN_RECORD = "postprocessing.json"


@dataclass(frozen=True)
class FolderResult:
    """What :func:`postprocess_folder` did.

    Attributes:
        output_dir: The output folder.
        written: Case IDs written by this run.
        skipped: Case IDs already present from an earlier run with the same plan.
        changed_voxels: Case ID to the number of voxels the plan changed (written cases only).
    """

    output_dir: Path
    written: tuple[str, ...]
    skipped: tuple[str, ...]
    changed_voxels: dict[str, int]


def _plan_key(plan: PostprocessingPlan) -> dict[str, Any]:
    """What decides the labels: the plan without its record (metrics, reasons)."""
    data = plan.to_dict()
    data.pop("metrics")
    for step in data["steps"]:
        step.pop("reason", None)
    return data


def _plan_labels(plan: PostprocessingPlan) -> dict[str, tuple[int, ...]]:
    """The label values each part of the plan names."""
    return {
        "keep_largest": plan.keep_largest,
        "fill_holes": plan.fill_holes,
        "min_voxels": tuple(plan.min_voxels),
        "min_volume_mm3": tuple(plan.min_volume_mm3),
        "steps": tuple(v for s in plan.steps for v in (s.label, s.to) if v > 0),
    }


def _check_plan_labels(plan: PostprocessingPlan, input_dir: Path) -> None:
    dataset_json = input_dir / "dataset.json"
    if not dataset_json.is_file():
        return
    spec = load_dataset_json(dataset_json)
    if spec.has_regions:
        return
    _check_labels_known(
        plan,
        spec,
        f"labels defined in {dataset_json} ({spec.describe_defined()})",
        "Fix the plan or the label value.",
    )


def _check_labels_known(plan: PostprocessingPlan, spec: LabelSpec, expected: str, fix: str) -> None:
    """Raise naming the plan's key whose label ``spec`` does not define."""
    known = set(spec.defined)
    for name, ids in _plan_labels(plan).items():
        missing = sorted(set(ids) - known)
        if missing:
            raise InputError(
                plan.source or "plan", expected, f"label {missing[0]}", key=name, fix=fix
            )


def resolve_plan(
    plan: PostprocessingPlan | str | os.PathLike[str] | None, *, label_spec: LabelSpec
) -> PostprocessingPlan | None:
    """A plan given as an object or a file, checked against the labels it will see.

    For ``predict --plan`` and ``ensemble --plan``: an empty plan is ``None`` (nothing to do).

    Raises:
        InputError: For a bad plan file, or a plan label the labels do not define.
        ValueError: If the labels are regions (component rules need label values).
    """
    if plan is None:
        return None
    resolved = plan if isinstance(plan, PostprocessingPlan) else load_plan(plan)
    if resolved.is_empty:
        return None
    if label_spec.has_regions:
        raise ValueError(
            f"plan {resolved.source or ''} must be applied to label values; these predictions "
            "use regions. Postprocess the label files instead."
        )
    _check_labels_known(
        resolved,
        label_spec,
        f"labels of the predictions ({label_spec.describe_defined()})",
        "Use the plan made for these models' labels.",
    )
    return resolved


def _check_header(path: Path) -> None:
    """Cheap up-front check (no pixel data read): one component, 2D or 3D, numeric type."""
    import SimpleITK

    sitk: Any = SimpleITK  # untyped module
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            path,
            "a readable label image",
            f"a read error ({first[:160]})",
            fix="Copy or export the file again.",
        ) from err
    if reader.GetNumberOfComponents() != 1:
        raise ValueError(
            f"{path}: label files must have one component per voxel; "
            f"got {reader.GetNumberOfComponents()}."
        )
    if reader.GetDimension() not in (2, 3):
        raise ValueError(f"{path}: label files must be 2D or 3D; got {reader.GetDimension()}D.")


def postprocess_file(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    plan: PostprocessingPlan,
    *,
    probabilities: NDArray[np.floating[Any]] | str | os.PathLike[str] | None = None,
) -> int:
    """Apply ``plan`` to one label file and write the result (uint8, ``source``'s geometry).

    The one way every command writes postprocessed labels (``postprocess apply``, ``predict
    --plan``, ``ensemble --plan``), so that they write the same bytes: a NIfTI output keeps the
    source's header bit for bit (:func:`nnunet_ext.io.write_labels` with
    ``exact_nifti_header``).

    Args:
        source: The label file. Not modified.
        destination: Where to write (atomically).
        plan: The steps.
        probabilities: The fused probabilities ``(C, *labels.shape)`` for ``min_probability``,
            or their ``CASE.npz``.

    Returns:
        The number of voxels the plan changed.

    Raises:
        ValueError: For labels above 255, or a step whose input is missing (naming it).
    """
    image = read_labels(source)
    if probabilities is not None and not isinstance(probabilities, np.ndarray):
        probabilities = read_case_probabilities(probabilities, image.array.shape)
    result = apply_plan(image.array, plan, spacing=image.spacing, probabilities=probabilities)
    if result.size and int(result.max()) > MAX_UINT8_LABEL:
        raise ValueError(
            f"{source}: labels must be <= {MAX_UINT8_LABEL} to be written as uint8; found "
            f"{int(result.max())}."
        )
    write_labels(result, destination, like=image, exact_nifti_header=True)
    return int(np.count_nonzero(result != image.array))


def _process_case(job: tuple[str, str, dict[str, Any], str | None]) -> int:
    source, destination, plan_dict, npz = job
    plan = PostprocessingPlan.from_dict(plan_dict)
    return postprocess_file(source, destination, plan, probabilities=npz)


def _probability_files(
    plan: PostprocessingPlan,
    probabilities_dir: str | os.PathLike[str] | None,
    cases: Mapping[str, Path],
) -> dict[str, str]:
    """Each case's ``CASE.npz`` where a step reads it (checked before any output)."""
    if not plan.needs_probabilities:
        return {}
    if probabilities_dir is None:
        step = next(s for s in plan.steps if s.needs_probabilities)
        raise ValueError(
            f"step '{step.describe()}' of the plan needs the fused probabilities; pass "
            "probabilities_dir (the folder of the predictions' CASE.npz), or run the plan in "
            "predict or ensemble."
        )
    found = find_probability_files(probabilities_dir, cases)
    return {case: str(path) for case, path in found.items()}


def _check_same_plan(target: Path, plan: PostprocessingPlan, num_existing: int) -> None:
    """Refuse to add to an output folder made with a different (or unrecorded) plan."""
    record = target / PLAN_RECORD
    previous: Any = None
    if record.is_file():
        try:
            previous = json.loads(record.read_text(encoding="utf-8"))
            previous = _plan_key(PostprocessingPlan.from_dict(previous))
        except (ValueError, json.JSONDecodeError):
            previous = None
    if previous != _plan_key(plan):
        raise FileExistsError(
            f"output_dir {str(target)!r} already holds {num_existing} case(s) made with a "
            "different or unknown plan. Pass overwrite=True to redo them, or "
            "choose another folder."
        )


def _check_arguments(source: Path, target: Path, num_workers: int) -> None:
    if not source.is_dir():
        raise NotADirectoryError(f"input_dir must be a folder of label files; got {str(source)!r}.")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers must be an int >= 1; got {num_workers!r}.")
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"output_dir must be a folder; got the file {str(target)!r}.")
    if target.resolve() == source.resolve():
        raise ValueError(
            f"output_dir must differ from input_dir; got {str(target)!r} for both. Inputs are "
            "never "
            "overwritten; choose another output folder."
        )


def postprocess_folder(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    plan: PostprocessingPlan,
    num_workers: int = 1,
    overwrite: bool = False,
    file_ending: str | None = None,
    executor: Executor | None = None,
    probabilities_dir: str | os.PathLike[str] | None = None,
) -> FolderResult:
    """Apply ``plan`` to every label file in ``input_dir`` and write the results to ``output_dir``.

    ``dataset.json`` and ``plans.json`` are copied along, as nnU-Net does, and the plan is recorded
    in ``output_dir/postprocessing.json``.

    Args:
        input_dir: Folder of label files (e.g. an nnU-Net prediction folder). Not modified.
        output_dir: Destination folder (created); must differ from ``input_dir``.
        plan: The steps to run.
        num_workers: Processes (spawn pool) to use; 1 runs in this process.
        overwrite: Redo cases already present in ``output_dir``.
        file_ending: Label file ending; default from ``input_dir/dataset.json``, else ``.nii.gz``.
        executor: Where the cases run (default: local, ``num_workers`` processes).
        probabilities_dir: Folder of the fused probabilities (``CASE.npz``) of these labels,
            read by ``min_probability`` steps (only those steps read it).

    Returns:
        A :class:`FolderResult`.

    Raises:
        NotADirectoryError: If ``input_dir`` is not a folder.
        FileExistsError: If ``output_dir`` holds results of a different plan and not ``overwrite``.
        ValueError: For an unreadable file, non-integer labels, labels > 255, a plan label not
            in ``dataset.json``, or a ``min_probability`` step without ``probabilities_dir``
            (naming the step); no output of this run is kept.
        FileNotFoundError: If ``probabilities_dir`` lacks a case's ``CASE.npz``.
    """
    source = Path(input_dir)
    target = Path(output_dir)
    _check_arguments(source, target, num_workers)
    ending = _file_ending(source, file_ending)
    cases, _ = list_case_files(source, ending)
    if not cases:
        raise ValueError(f"input_dir {str(source)!r} holds no '*{ending}' label files.")
    _check_plan_labels(plan, source)
    for path in cases.values():
        _check_header(path)
    npz = _probability_files(plan, probabilities_dir, cases)

    record = target / PLAN_RECORD
    existing = {case for case in cases if (target / f"{case}{ending}").is_file()}
    if existing and not overwrite:
        _check_same_plan(target, plan, len(existing))
    todo = sorted(cases if overwrite else set(cases) - existing)
    skipped = tuple(sorted(set(cases) - set(todo)))
    target.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    write_json(record, plan.to_dict())
    for name in ("dataset.json", "plans.json"):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    plan_dict = plan.to_dict()
    jobs = [(str(cases[c]), str(target / f"{c}{ending}"), plan_dict, npz.get(c)) for c in todo]
    try:
        changed = map_cases(
            _process_case, jobs, num_workers=num_workers, desc="postprocess", executor=executor
        )
    except BaseException:
        fresh = set(todo) - existing
        for case in fresh:
            (target / f"{case}{ending}").unlink(missing_ok=True)
        if set(todo) & existing:  # some earlier outputs were redone: the record no longer holds
            record.unlink(missing_ok=True)
        remove_stale_temporaries(target)
        raise
    changed_voxels: Mapping[str, int] = dict(zip(todo, changed, strict=True))
    logger.info("postprocessed %d case(s) into %s (%d skipped)", len(todo), target, len(skipped))
    return FolderResult(
        output_dir=target, written=tuple(todo), skipped=skipped, changed_voxels=dict(changed_voxels)
    )
