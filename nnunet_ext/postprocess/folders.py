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

from nnunet_ext._parallel import Executor, map_cases
from nnunet_ext.io import (
    InputError,
    list_case_files,
    load_dataset_json,
    read_labels,
    remove_stale_temporaries,
    write_json,
    write_labels,
)
from nnunet_ext.io.labels import MAX_UINT8_LABEL
from nnunet_ext.postprocess.plan import PostprocessingPlan, _file_ending, apply_plan

__all__ = ["PLAN_RECORD", "FolderResult", "postprocess_folder"]

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
    data = plan.to_dict()
    data.pop("metrics")
    return data


def _check_plan_labels(plan: PostprocessingPlan, input_dir: Path) -> None:
    dataset_json = input_dir / "dataset.json"
    if not dataset_json.is_file():
        return
    spec = load_dataset_json(dataset_json)
    if spec.has_regions:
        return
    known = set(spec.defined)
    used = {
        "keep_largest": plan.keep_largest,
        "fill_holes": plan.fill_holes,
        "min_voxels": tuple(plan.min_voxels),
        "min_volume_mm3": tuple(plan.min_volume_mm3),
    }
    for name, ids in used.items():
        missing = sorted(set(ids) - known)
        if missing:
            raise InputError(
                plan.source or "plan",
                f"labels defined in {dataset_json} ({spec.describe_defined()})",
                f"label {missing[0]}",
                key=name,
                fix="Fix the plan or the label value.",
            )


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


def _process_case(job: tuple[str, str, dict[str, Any]]) -> int:
    source, destination, plan_dict = job
    plan = PostprocessingPlan.from_dict(plan_dict)
    image = read_labels(source)
    result = apply_plan(image.array, plan, spacing=image.spacing)
    if result.size and int(result.max()) > MAX_UINT8_LABEL:
        raise ValueError(
            f"{source}: labels must be <= {MAX_UINT8_LABEL} to be written as uint8; found "
            f"{int(result.max())}."
        )
    write_labels(result, destination, like=image, exact_nifti_header=True)
    return int(np.count_nonzero(result != image.array))


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

    Returns:
        A :class:`FolderResult`.

    Raises:
        NotADirectoryError: If ``input_dir`` is not a folder.
        FileExistsError: If ``output_dir`` holds results of a different plan and not ``overwrite``.
        ValueError: For an unreadable file, non-integer labels, labels > 255 or a plan label not
            in ``dataset.json``; no output of this run is kept.
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
    jobs = [(str(cases[c]), str(target / f"{c}{ending}"), plan_dict) for c in todo]
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
