"""Validate a folder ensemble up front: what :func:`~nnunet_ext.ensemble.ensemble_folders` will do.

Everything that can be checked before fusing is checked here (folders, ``dataset.json`` label
definitions, case pairing, zip directories and array headers, ``.pkl`` properties, weights), so a
bad input fails in seconds with one clear line and nothing written. The result is an
:class:`EnsemblePlan`: one small, picklable :class:`CaseJob` per case to (re)write, the cases
whose outputs are complete already (a rerun skips them) and the provenance to record.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext import __version__
from nnunet_ext.ensemble.channels import label_channels, label_rules, weight_matrix
from nnunet_ext.ensemble.fusion import normalize_weights
from nnunet_ext.ensemble.rules import LabelRules
from nnunet_ext.ensemble.spec import EnsembleSpec
from nnunet_ext.io import (
    InputError,
    LabelSpec,
    load_dataset_json,
    load_json,
    load_plans,
    reader_writer,
)
from nnunet_ext.io.case_properties import load_case_properties
from nnunet_ext.io.cases import PairedCases, pair_probability_files
from nnunet_ext.io.labels import MAX_UINT8_LABEL
from nnunet_ext.io.probabilities import ProbabilityFile, inspect_probabilities
from nnunet_ext.postprocess.folders import resolve_plan
from nnunet_ext.postprocess.plan import PostprocessingPlan
from nnunet_ext.qc.cases import record_file

__all__ = [
    "MAX_WRITTEN_LABEL",
    "PROVENANCE_FILE",
    "CaseJob",
    "EnsemblePlan",
    "plan_ensemble",
]

logger = logging.getLogger(__name__)

#: Provenance file written into every output folder.
PROVENANCE_FILE = "nnunet_ext_ensemble.json"

#: Largest label the ensemble writes. It writes with nnU-Net's own writers (to match
#: ``nnUNetv2_ensemble``), which store uint8 only while every label is below the uint8 ceiling
#: :data:`~nnunet_ext.io.labels.MAX_UINT8_LABEL` (``uint8 if max < 255 else uint16``): a label of
#: 255 would silently give a uint16 file.
MAX_WRITTEN_LABEL = MAX_UINT8_LABEL - 1


@dataclass(frozen=True)
class CaseJob:
    """Everything needed to fuse one case (picklable, small).

    Attributes:
        case_id: The case.
        members: The member probability files, in folder order (present members only).
        member_dirs: Index of each member's folder in the input list.
        weights: Normalised ``(len(members), C)`` weights.
        properties: The first member's ``.pkl`` properties (geometry for the writer).
        label_file: Destination label file.
        probabilities_file: Destination ``.npz`` with ``save_probabilities``, else ``None``.
        rules: Per-label rules, member indices into ``members`` (present members).
    """

    case_id: str
    members: tuple[ProbabilityFile, ...]
    member_dirs: tuple[int, ...]
    weights: NDArray[np.float64]
    properties: dict[str, Any]
    label_file: Path
    probabilities_file: Path | None
    rules: LabelRules = field(default_factory=LabelRules)


@dataclass(frozen=True)
class EnsemblePlan:
    """A validated ensemble: what :func:`~nnunet_ext.ensemble.ensemble_folders` will do.

    Attributes:
        spec: Members and weights (absolute folders).
        output_dir: Destination folder.
        label_spec: Label definitions shared by all inputs.
        weights: The unnormalised ``(M, C)`` weight matrix.
        rules: The spec's per-label rules on class indices (member indices into the spec).
        jobs: One job per case to (re)write.
        skipped: Cases whose outputs are complete already.
        ignored: Hidden files skipped in the input folders.
        image_reader_writer: nnU-Net writer name from ``plans.json``.
        file_ending: Label file ending from ``dataset.json``.
        dataset_json_file: ``dataset.json`` of the first folder (copied to the output).
        plans_json_file: ``plans.json`` of the first folder (copied to the output).
    """

    spec: EnsembleSpec
    output_dir: Path
    label_spec: LabelSpec
    weights: NDArray[np.float64]
    rules: LabelRules
    jobs: tuple[CaseJob, ...]
    skipped: tuple[str, ...]
    ignored: tuple[Path, ...]
    image_reader_writer: str
    file_ending: str
    dataset_json_file: Path
    plans_json_file: Path
    save_probabilities: bool = False
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    postprocessing: PostprocessingPlan | None = None


def _list_some(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


#: The files every prediction folder must hold, and why (the fix when one is missing).
_REQUIRED_FILES = {
    "dataset.json": "nnUNetv2_predict copies dataset.json into every prediction folder. "
    "Copy it from the model folder.",
    "plans.json": "it selects nnU-Net's image writer. "
    "nnUNetv2_predict copies it into prediction folders; copy it from the model folder.",
}


def _required_file(folder: Path, name: str) -> Path:
    """``folder / name``, one of :data:`_REQUIRED_FILES`, which must exist."""
    file = folder / name
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found; {_REQUIRED_FILES[name]}")
    return file


def _load_label_spec(folder: Path) -> tuple[LabelSpec, Path]:
    file = _required_file(folder, "dataset.json")
    return load_dataset_json(file), file


def plan_ensemble(
    input_dirs: Sequence[str | os.PathLike[str]] | None,
    output_dir: str | os.PathLike[str],
    *,
    weights: Sequence[float] | None = None,
    label_weights: Sequence[Mapping[str | int, float]] | None = None,
    spec: EnsembleSpec | str | os.PathLike[str] | None = None,
    save_probabilities: bool = False,
    overwrite: bool = False,
    allow_missing: bool = False,
    postprocessing: PostprocessingPlan | str | os.PathLike[str] | None = None,
    qc: bool = False,
) -> EnsemblePlan:
    """Validate all inputs of an ensemble without fusing anything.

    See :func:`~nnunet_ext.ensemble.ensemble_folders` for the parameters; with ``qc`` a case is
    complete only when its QC record exists too.

    Reads folder listings, JSON files, zip directories, ``.npy`` headers and ``.pkl`` properties.

    Returns:
        The plan.

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError, FileExistsError: For any bad input.
    """
    spec, spec_source = _resolve_spec(input_dirs, weights, label_weights, spec)
    folders = [m.path.resolve() for m in spec.members]
    spec = spec.with_input_dirs(folders)
    out = Path(output_dir).resolve()
    _check_folders(folders, out)
    label_spec, dataset_json_file = _shared_label_spec(folders)
    plans_json_file, rw_name = _image_reader_writer(folders[0])
    num_classes = _num_classes(label_spec, dataset_json_file)
    matrix = weight_matrix(spec, label_spec, source=spec_source)
    normalize_weights(matrix, num_members=len(folders), num_classes=num_classes)
    rules = label_rules(spec, label_spec)
    paired = _paired_cases(folders, allow_missing)
    file_ending = label_spec.file_ending
    pp = resolve_plan(postprocessing, label_spec=label_spec)
    provenance = {
        "schema_version": 1,
        "tool": "nnunet_ext.ensemble",
        "version": __version__,
        "inputs": [str(f) for f in folders],
        "spec": spec.to_dict(),
        "weights": matrix.tolist(),
        "save_probabilities": save_probabilities,
        "allow_missing": allow_missing,
        "file_ending": file_ending,
        "image_reader_writer": rw_name,
        "postprocessing": None if pp is None else {**pp.to_dict(), "metrics": {}},
    }
    if out.is_dir() and not overwrite:
        _check_previous_output(out, provenance)
    context = _JobContext(
        folders, matrix, rules, num_classes, dataset_json_file, rw_name, out, file_ending, qc
    )
    jobs, skipped = _plan_jobs(
        paired, context, save_probabilities=save_probabilities, overwrite=overwrite
    )
    return EnsemblePlan(
        spec=spec,
        output_dir=out,
        label_spec=label_spec,
        weights=matrix,
        rules=rules,
        jobs=tuple(jobs),
        skipped=tuple(skipped),
        ignored=paired.ignored,
        image_reader_writer=rw_name,
        file_ending=file_ending,
        dataset_json_file=dataset_json_file,
        plans_json_file=plans_json_file,
        save_probabilities=save_probabilities,
        provenance=provenance,
        postprocessing=pp,
    )


def _check_folders(folders: Sequence[Path], out: Path) -> None:
    """Refuse repeated input folders, an output that is an input, and missing inputs."""
    if len(set(folders)) != len(folders):
        dupes = sorted({str(f) for f in folders if folders.count(f) > 1})
        raise ValueError(f"input_dirs must be distinct folders; got {_list_some(dupes)} twice.")
    if out in folders:
        raise ValueError(f"output_dir must differ from every input folder; got {out}.")
    for folder in folders:
        if not folder.is_dir():
            raise NotADirectoryError(f"input folder not found: {folder}")


def _num_classes(label_spec: LabelSpec, dataset_json_file: Path) -> int:
    """The probability channels of ``label_spec``; refused if a label exceeds the ceiling."""
    num_classes = len(label_channels(label_spec)[0])
    regions_order = label_spec.regions_class_order if label_spec.has_regions else None
    max_label = max(regions_order) if regions_order else num_classes - 1
    if max_label > MAX_WRITTEN_LABEL:
        raise ValueError(
            f"{dataset_json_file}: labels must be <= {MAX_WRITTEN_LABEL} to be written as uint8; "
            f"the largest label is {max_label}."
        )
    return num_classes


def _resolve_spec(
    input_dirs: Sequence[str | os.PathLike[str]] | None,
    weights: Sequence[float] | None,
    label_weights: Sequence[Mapping[str | int, float]] | None,
    spec: EnsembleSpec | str | os.PathLike[str] | None,
) -> tuple[EnsembleSpec, str]:
    """The spec to fuse with (loaded, or built from ``weights``) and its name for messages."""
    spec_source = "--label-weights"
    if spec is not None and not isinstance(spec, EnsembleSpec):
        spec_source = str(spec)
        spec = EnsembleSpec.load(spec)
    elif spec is not None:
        spec_source = "spec"
    if spec is not None:
        if weights is not None or label_weights is not None:
            raise ValueError(
                "weights must not be given together with a spec; put them in the spec."
            )
        if input_dirs:
            spec = spec.with_input_dirs(input_dirs)
        return spec, spec_source
    if not input_dirs:
        raise ValueError("input_dirs must list at least one prediction folder; got none.")
    spec = EnsembleSpec.from_weights(input_dirs, weights=weights, label_weights=label_weights)
    return spec, spec_source


def _shared_label_spec(folders: Sequence[Path]) -> tuple[LabelSpec, Path]:
    """The label definitions, which every folder's ``dataset.json`` must agree on."""
    label_spec, dataset_json_file = _load_label_spec(folders[0])
    for folder in folders[1:]:
        other, file = _load_label_spec(folder)
        if not other.same_labels(label_spec):
            raise ValueError(
                f"dataset.json label definitions differ: {dataset_json_file} has "
                f"{label_spec.labels} but {file} has {other.labels}. Only predictions of the same "
                "labels can be fused."
            )
    return label_spec, dataset_json_file


def _image_reader_writer(folder: Path) -> tuple[Path, str]:
    """``plans.json`` of the first folder and nnU-Net's image reader/writer it names."""
    plans_json_file = _required_file(folder, "plans.json")
    plans = load_plans(plans_json_file)
    rw_name: str = plans["image_reader_writer"]  # validated by load_plans
    reader_writer(rw_name)  # import errors fail here, before any work
    return plans_json_file, rw_name


def _paired_cases(folders: Sequence[Path], allow_missing: bool) -> PairedCases:
    """The probability files of every case across the folders; missing ones refused."""
    paired = pair_probability_files(folders)
    if paired.ignored:
        logger.warning(
            "ignoring %d hidden file(s): %s",
            len(paired.ignored),
            _list_some([str(p) for p in paired.ignored]),
        )
    missing = paired.missing
    if missing and not allow_missing:
        details = [
            f"{case} (missing in {', '.join(str(d) for d in dirs)})"
            for case, dirs in missing.items()
        ]
        raise ValueError(
            f"{len(missing)} case(s) are missing from some input folders: "
            f"{_list_some(details, 3)}. Add the predictions, or pass allow_missing=True to fuse "
            "each case from the folders that have it."
        )
    return paired


def _check_previous_output(out: Path, provenance: Mapping[str, Any]) -> None:
    """Refuse (without ``overwrite``) a folder holding other labels or another ensemble."""
    previous = out / PROVENANCE_FILE
    file_ending = provenance["file_ending"]
    if not previous.is_file():
        foreign = sorted(p.name for p in out.glob(f"*{file_ending}") if not p.name.startswith("."))
        if foreign:
            raise FileExistsError(
                f"{out} already holds {len(foreign)} label file(s) not written by this command "
                f"({_list_some(foreign, 3)}). Pass overwrite=True to replace them, "
                "or choose an empty output folder."
            )
        return
    old = load_json(previous)
    keys = ("inputs", "weights", "save_probabilities", "file_ending", "postprocessing")
    if (
        not isinstance(old, dict)
        or any(old.get(k) != provenance[k] for k in keys)
        or old.get("spec", {}).get("rules", []) != provenance["spec"].get("rules", [])
    ):
        raise FileExistsError(
            f"{out} holds an ensemble made with other inputs or weights ({previous}). "
            "Pass overwrite=True to replace it, or choose another output folder."
        )


@dataclass(frozen=True)
class _JobContext:
    """What every case job of one ensemble shares."""

    folders: Sequence[Path]
    matrix: NDArray[np.float64]
    rules: LabelRules
    num_classes: int
    dataset_json_file: Path
    rw_name: str
    out: Path
    file_ending: str
    qc: bool = False


@dataclass(frozen=True)
class _PlannedJob:
    job: CaseJob
    complete: bool


def _plan_jobs(
    paired: PairedCases, context: _JobContext, *, save_probabilities: bool, overwrite: bool
) -> tuple[list[CaseJob], list[str]]:
    """The job of every case to (re)write, and the cases complete already (kept)."""
    jobs: list[CaseJob] = []
    skipped: list[str] = []
    for case, paths in paired.cases.items():
        job = _case_job(case, paths, context, save_probabilities=save_probabilities)
        if job.complete and not overwrite:
            skipped.append(case)
        else:
            jobs.append(job.job)
    return jobs, skipped


def _case_job(
    case: str, paths: Sequence[Path | None], context: _JobContext, *, save_probabilities: bool
) -> _PlannedJob:
    """Check one case's probability files against each other and the dataset; build its job."""
    present = [(i, p) for i, p in enumerate(paths) if p is not None]
    infos = [inspect_probabilities(p) for _, p in present]
    _check_case_arrays(case, infos, context)
    properties = [
        load_case_properties(p, reader_writer=context.rw_name, shape=infos[0].spatial_shape)
        for _, p in present
    ]
    member_dirs = [i for i, _ in present]
    normalized, case_rules = _case_weights_and_rules(case, member_dirs, context)
    out = context.out
    label_file = out / f"{case}{context.file_ending}"
    npz_file = out / f"{case}.npz" if save_probabilities else None
    complete = (
        label_file.is_file()
        and (npz_file is None or (npz_file.is_file() and (out / f"{case}.pkl").is_file()))
        and (not context.qc or record_file(out, case).is_file())
    )
    job = CaseJob(
        case_id=case,
        members=tuple(infos),
        member_dirs=tuple(member_dirs),
        weights=normalized,
        properties=properties[0],
        label_file=label_file,
        probabilities_file=npz_file,
        rules=case_rules,
    )
    return _PlannedJob(job, complete)


def _check_case_arrays(case: str, infos: Sequence[ProbabilityFile], context: _JobContext) -> None:
    """The members of ``case`` must share one shape, with the dataset's channels."""
    first = infos[0]
    for info in infos[1:]:
        if info.shape != first.shape:
            raise InputError(
                info.path,
                f"probabilities of shape {first.shape} like {first.path} (case {case!r})",
                f"shape {info.shape}",
                fix="Predictions must come from the same images.",
            )
    if first.num_classes != context.num_classes:
        raise InputError(
            first.path,
            f"{context.num_classes} channels, as {context.dataset_json_file} defines "
            f"(case {case!r})",
            f"{first.num_classes} channels",
            fix="Fuse predictions of this dataset only.",
        )


def _case_weights_and_rules(
    case: str, member_dirs: Sequence[int], context: _JobContext
) -> tuple[NDArray[np.float64], LabelRules]:
    """The normalised weights of the members present for ``case``; rules on those members."""
    try:
        normalized = normalize_weights(
            context.matrix[list(member_dirs)],
            num_members=len(member_dirs),
            num_classes=context.num_classes,
        )
    except ValueError as err:
        if len(member_dirs) == len(context.folders):
            raise
        raise ValueError(
            f"case {case!r} (present in {len(member_dirs)} folders only): {err}"
        ) from err
    position = {folder_index: k for k, folder_index in enumerate(member_dirs)}
    for label, member in context.rules.take:
        if member not in position:
            raise ValueError(
                f"case {case!r}: the spec's from rule for label {label} needs member {member} "
                f"({context.folders[member]}), which lacks this case. Add the prediction."
            )
    case_rules = LabelRules(
        context.rules.scale,
        tuple((c, position[m]) for c, m in context.rules.take),
        context.rules.thresholds,
    )
    return normalized, case_rules
