"""Fuse nnU-Net prediction folders: validation up front, streaming fusion, atomic outputs.

Everything that can be checked before fusing is checked first (folders, ``dataset.json`` label
definitions, case pairing, zip directories and array headers, ``.pkl`` properties, weights), so a
bad input fails in seconds with one clear line and nothing written. Each case is then fused by
streaming the decompressed members chunk by chunk into one float32 accumulator, converted to labels
like nnU-Net's LabelManager and written with nnU-Net's own image writer (from ``plans.json``) to a
temporary name that is renamed when complete. A rerun skips complete cases.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext import __version__
from nnunet_ext._parallel import Executor, map_cases, progress
from nnunet_ext.ensemble.fusion import (
    FusionAccumulator,
    LabelRules,
    normalize_weights,
    probabilities_to_labels,
)
from nnunet_ext.ensemble.spec import EnsembleSpec
from nnunet_ext.io import (
    InputError,
    LabelSpec,
    atomic_path,
    load_dataset_json,
    load_json,
    load_plans,
    reader_writer,
    remove_stale_temporaries,
    write_json,
)
from nnunet_ext.io.probabilities import (
    PairedCases,
    ProbabilityFile,
    inspect_probabilities,
    iter_probability_chunks,
    load_case_properties,
    pair_probability_files,
    read_probabilities,
)
from nnunet_ext.io.schema import key_path

__all__ = [
    "PROVENANCE_FILE",
    "CaseJob",
    "EnsemblePlan",
    "EnsembleSummary",
    "ensemble_folders",
    "fuse_case",
    "label_rules",
    "plan_ensemble",
    "weight_matrix",
]

logger = logging.getLogger(__name__)

#: Provenance file written into every output folder.
PROVENANCE_FILE = "nnunet_ext_ensemble.json"

#: Largest label value nnU-Net's writers store as uint8 (they switch to uint16 at 255).
_MAX_UINT8_LABEL = 254


def _label_channels(label_spec: LabelSpec) -> tuple[list[int | tuple[int, ...]], dict[str, int]]:
    """Return the label/region of each channel and a name-or-value -> channel lookup."""
    lookup: dict[str, int] = {}
    if label_spec.has_regions:
        if label_spec.regions_class_order is None:
            raise ValueError(
                "dataset.json defines regions but no regions_class_order; nnU-Net needs it to "
                "turn region probabilities into labels."
            )
        channels: list[int | tuple[int, ...]] = []
        for name, value in label_spec.labels.items():
            if name == "ignore" or value == 0 or (isinstance(value, tuple) and set(value) == {0}):
                continue
            lookup[name] = len(channels)
            channels.append(value)
        for index, value in enumerate(label_spec.regions_class_order):
            lookup.setdefault(str(value), index)
        return channels, lookup
    values = sorted(
        {int(v) for k, v in label_spec.labels.items() if k != "ignore" and isinstance(v, int)}
    )
    for name, value in label_spec.labels.items():
        if name != "ignore" and isinstance(value, int):
            lookup[name] = values.index(value)
    for index, value in enumerate(values):
        lookup[str(value)] = index
    return list(values), lookup


def weight_matrix(
    spec: EnsembleSpec, label_spec: LabelSpec, *, source: str = "spec"
) -> NDArray[np.float64]:
    """Build the ``(M, C)`` weight matrix of ``spec`` for the channels of ``label_spec``.

    Each member's global ``weight`` fills its row; ``label_weights`` override single labels,
    named by value or by name from ``dataset.json``.

    Args:
        spec: Members and weights.
        label_spec: The ``dataset.json`` labels of the inputs.
        source: The spec file (or option) the weights come from, for error messages.

    Returns:
        Unnormalised weights, one row per member, one column per probability channel.

    Raises:
        InputError: For a label name/value ``dataset.json`` does not define.

    Examples:
        >>> labels = LabelSpec(labels={"background": 0, "LV": 1, "RV": 2})
        >>> spec = EnsembleSpec.from_weights(
        ...     ["a", "b"], weights=[0.3, 0.7], label_weights=[{"RV": 1}, {"2": 0}])
        >>> weight_matrix(spec, labels)
        array([[0.3, 0.3, 1. ],
               [0.7, 0.7, 0. ]])
    """
    channels, lookup = _label_channels(label_spec)
    matrix = np.array([[m.weight] * len(channels) for m in spec.members], dtype=np.float64)
    for row, member in enumerate(spec.members):
        for key, weight in member.label_weights.items():
            if key not in lookup:
                import difflib

                lowered = {k.lower(): k for k in lookup}
                close = difflib.get_close_matches(key.lower(), list(lowered), n=1)
                hint = f" Did you mean {lowered[close[0]]!r}?" if close else ""
                raise InputError(
                    source,
                    f"a label defined in {label_spec.source} ({', '.join(lookup)})",
                    repr(key),
                    key=key_path(key_path(key_path("members", row), "label_weights"), key),
                    fix=f"Use a defined label name or value.{hint}",
                )
            matrix[row, lookup[key]] = weight
    return matrix


def _unknown_label(key: str, lookup: Mapping[str, int], where: str) -> ValueError:
    import difflib

    lowered = {k.lower(): k for k in lookup}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1)
    hint = f" Did you mean {lowered[close[0]]!r}?" if close else ""
    return ValueError(
        f"{where} name label {key!r}, which dataset.json does not define; "
        f"known: {', '.join(lookup)}.{hint}"
    )


def label_rules(spec: EnsembleSpec, label_spec: LabelSpec) -> LabelRules:
    """Resolve the spec's ``rules`` to class indices of ``label_spec``'s channels.

    Raises:
        ValueError: For an unknown label, or rules on region-based (sigmoid) labels.

    Examples:
        >>> labels = LabelSpec(labels={"background": 0, "LV": 1, "RV": 2})
        >>> spec = EnsembleSpec.from_weights(
        ...     ["a", "b"], rules=[{"label": "RV", "from": 0}, {"label": 1, "scale": 1.5}])
        >>> label_rules(spec, labels)
        LabelRules(scale=(1.0, 1.5, 1.0), take=((2, 0),))
    """
    if not spec.rules:
        return LabelRules()
    if label_spec.has_regions:
        raise ValueError(
            "the spec's rules (scale, from) apply to softmax (label) models; dataset.json "
            "defines regions. Remove the rules."
        )
    _, lookup = _label_channels(label_spec)
    scale: dict[int, float] = {}
    take: list[tuple[int, int]] = []
    for index, rule in enumerate(spec.rules):
        if rule.label not in lookup:
            raise _unknown_label(rule.label, lookup, f"rules[{index}] of the spec")
        channel = lookup[rule.label]
        if rule.member is not None:
            if channel in [c for c, _ in take]:
                raise ValueError(
                    f"rules[{index}] of the spec: label {rule.label!r} has a from rule already "
                    "(by another name or value); keep one."
                )
            take.append((channel, rule.member))
        else:
            if channel in scale:
                raise ValueError(
                    f"rules[{index}] of the spec: label {rule.label!r} has a scale already "
                    "(by another name or value); keep one."
                )
            scale[channel] = float(rule.scale or 1.0)
    return LabelRules.build(len(_label_channels(label_spec)[0]), scale=scale, take=take)


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
    """A validated ensemble: what :func:`ensemble_folders` will do.

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


@dataclass(frozen=True)
class EnsembleSummary:
    """What :func:`ensemble_folders` did.

    Attributes:
        output_dir: The output folder.
        written: Cases fused in this run.
        skipped: Cases whose outputs already existed (resume).
        ignored: Hidden input files that were skipped.
        weights: The ``(M, C)`` weight matrix used (unnormalised).
    """

    output_dir: Path
    written: tuple[str, ...]
    skipped: tuple[str, ...]
    ignored: tuple[Path, ...]
    weights: tuple[tuple[float, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "output_dir": str(self.output_dir),
            "written": list(self.written),
            "skipped": list(self.skipped),
            "ignored": [str(p) for p in self.ignored],
            "weights": [list(row) for row in self.weights],
        }


def _list_some(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _load_label_spec(folder: Path) -> tuple[LabelSpec, Path]:
    file = folder / "dataset.json"
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} not found; nnUNetv2_predict copies dataset.json into every prediction folder. "
            "Copy it from the model folder."
        )
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
) -> EnsemblePlan:
    """Validate all inputs of an ensemble without fusing anything; see :func:`ensemble_folders`.

    Reads folder listings, JSON files, zip directories, ``.npy`` headers and ``.pkl`` properties.

    Returns:
        The plan.

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError, FileExistsError: For any bad input.
    """
    spec, spec_source = _resolve_spec(input_dirs, weights, label_weights, spec)
    folders = [m.path.resolve() for m in spec.members]
    spec = spec.with_input_dirs(folders)
    if len(set(folders)) != len(folders):
        dupes = sorted({str(f) for f in folders if folders.count(f) > 1})
        raise ValueError(f"input_dirs must be distinct folders; got {_list_some(dupes)} twice.")
    out = Path(output_dir).resolve()
    if out in folders:
        raise ValueError(f"output_dir must differ from every input folder; got {out}.")
    for folder in folders:
        if not folder.is_dir():
            raise NotADirectoryError(f"input folder not found: {folder}")
    label_spec, dataset_json_file = _shared_label_spec(folders)
    plans_json_file, rw_name = _image_reader_writer(folders[0])
    channels, _ = _label_channels(label_spec)
    num_classes = len(channels)
    regions_order = label_spec.regions_class_order if label_spec.has_regions else None
    max_label = max(regions_order) if regions_order else num_classes - 1
    if max_label > _MAX_UINT8_LABEL:
        raise ValueError(
            f"{dataset_json_file}: labels must be <= {_MAX_UINT8_LABEL} to be written as uint8; "
            f"the largest label is {max_label}."
        )
    matrix = weight_matrix(spec, label_spec, source=spec_source)
    normalize_weights(matrix, num_members=len(folders), num_classes=num_classes)
    rules = label_rules(spec, label_spec)
    paired = _paired_cases(folders, allow_missing)
    file_ending = label_spec.file_ending
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
    }
    if out.is_dir() and not overwrite:
        _check_previous_output(out, provenance)
    context = _JobContext(
        folders, matrix, rules, num_classes, dataset_json_file, rw_name, out, file_ending
    )
    jobs: list[CaseJob] = []
    skipped: list[str] = []
    for case, paths in paired.cases.items():
        job = _case_job(case, paths, context, save_probabilities=save_probabilities)
        if job.complete and not overwrite:
            skipped.append(case)
        else:
            jobs.append(job.job)
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
    )


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
    plans_json_file = folder / "plans.json"
    if not plans_json_file.is_file():
        raise FileNotFoundError(
            f"{plans_json_file} not found; it selects nnU-Net's image writer. "
            "nnUNetv2_predict copies it into prediction folders; copy it from the model folder."
        )
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
    keys = ("inputs", "weights", "save_probabilities", "file_ending")
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


@dataclass(frozen=True)
class _PlannedJob:
    job: CaseJob
    complete: bool


def _case_job(
    case: str, paths: Sequence[Path | None], context: _JobContext, *, save_probabilities: bool
) -> _PlannedJob:
    """Check one case's probability files against each other and the dataset; build its job."""
    present = [(i, p) for i, p in enumerate(paths) if p is not None]
    infos = [inspect_probabilities(p) for _, p in present]
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
    properties = [
        load_case_properties(p, reader_writer=context.rw_name, shape=first.spatial_shape)
        for _, p in present
    ]
    case_weights = context.matrix[[i for i, _ in present]]
    try:
        normalized = normalize_weights(
            case_weights, num_members=len(present), num_classes=context.num_classes
        )
    except ValueError as err:
        if len(present) == len(context.folders):
            raise
        raise ValueError(f"case {case!r} (present in {len(present)} folders only): {err}") from err
    position = {folder_index: k for k, (folder_index, _) in enumerate(present)}
    for label, member in context.rules.take:
        if member not in position:
            raise ValueError(
                f"case {case!r}: the spec's from rule for label {label} needs member {member} "
                f"({context.folders[member]}), which lacks this case. Add the prediction."
            )
    case_rules = LabelRules(
        context.rules.scale, tuple((c, position[m]) for c, m in context.rules.take)
    )
    out = context.out
    label_file = out / f"{case}{context.file_ending}"
    npz_file = out / f"{case}.npz" if save_probabilities else None
    complete = label_file.is_file() and (
        npz_file is None or (npz_file.is_file() and (out / f"{case}.pkl").is_file())
    )
    job = CaseJob(
        case_id=case,
        members=tuple(infos),
        member_dirs=tuple(i for i, _ in present),
        weights=normalized,
        properties=properties[0],
        label_file=label_file,
        probabilities_file=npz_file,
        rules=case_rules,
    )
    return _PlannedJob(job, complete)


def _find_non_finite(job: CaseJob, use_isal: bool | None) -> Path | None:
    for info in job.members:
        for _, values in iter_probability_chunks(info, use_isal=use_isal):
            if not np.all(np.isfinite(values)):
                return info.path
    return None


def fuse_case(job: CaseJob, *, use_isal: bool | None = None) -> NDArray[np.float32]:
    """Fuse the members of one case by streaming them into one float32 accumulator.

    Raises:
        ValueError: For a corrupt member or NaN/Inf probabilities (message names the file).
    """
    return _fuse(job, use_isal=use_isal)[0]


def _fuse(
    job: CaseJob, *, use_isal: bool | None = None
) -> tuple[NDArray[np.float32], dict[int, NDArray[Any]]]:
    """Fused probabilities and the uint8 argmax of the members the ``from`` rules need."""
    accumulator = FusionAccumulator(
        job.members[0].shape,
        weights=job.weights,
        num_members=len(job.members),
        argmax_members=job.rules.members,
    )
    for index, info in enumerate(job.members):
        if info.fortran_order:
            accumulator.add_array(
                index, read_probabilities(info.path, use_isal=use_isal, check_finite=True)
            )
        else:
            for offset, values in iter_probability_chunks(info, use_isal=use_isal):
                accumulator.add(index, offset, values)
    fused = accumulator.result()
    if not np.all(np.isfinite(fused)):
        culprit = _find_non_finite(job, use_isal)
        if culprit is not None:
            raise ValueError(
                f"{culprit}: probabilities must be finite; found NaN or Inf "
                f"(case {job.case_id!r}). Re-export this prediction."
            )
        raise ValueError(
            f"case {job.case_id!r}: the fused probabilities overflow float32; the inputs are not "
            "probabilities (logits?)."
        )
    return fused, accumulator.member_labels()


def _run_job(
    job: CaseJob, *, writer: Any, regions_class_order: Sequence[int] | None, use_isal: bool | None
) -> str:
    fused, member_labels = _fuse(job, use_isal=use_isal)
    labels = probabilities_to_labels(
        fused, regions_class_order=regions_class_order, rules=job.rules, member_labels=member_labels
    )
    del member_labels
    if labels.size and int(labels.max()) > _MAX_UINT8_LABEL:
        raise ValueError(
            f"case {job.case_id!r}: labels must be <= {_MAX_UINT8_LABEL} to be written as uint8; "
            f"found {int(labels.max())}."
        )
    labels = labels.astype(np.uint8, copy=False)
    if labels.ndim == 2:
        labels = labels[None]
    if job.probabilities_file is not None:
        with atomic_path(job.probabilities_file) as tmp:
            np.savez_compressed(tmp, probabilities=fused)
        pkl = job.probabilities_file.with_suffix(".pkl")
        with atomic_path(pkl) as tmp:
            tmp.write_bytes(pickle.dumps(job.properties))
    del fused
    with atomic_path(job.label_file) as tmp:
        writer.write_seg(labels, str(tmp), job.properties)
    return job.case_id


# Deliberate duplicate: ensemble_folders repeats plan_ensemble's keyword parameters (it forwards
# them), so that both public signatures are explicit and typed for users and mypy.
def ensemble_folders(
    input_dirs: Sequence[str | os.PathLike[str]] | None,
    output_dir: str | os.PathLike[str],
    *,
    weights: Sequence[float] | None = None,
    label_weights: Sequence[Mapping[str | int, float]] | None = None,
    spec: EnsembleSpec | str | os.PathLike[str] | None = None,
    save_probabilities: bool = False,
    num_workers: int = 1,
    overwrite: bool = False,
    allow_missing: bool = False,
    use_isal: bool | None = None,
    executor: Executor | None = None,
) -> EnsembleSummary:
    """Fuse nnU-Net probability folders into label files (and optionally fused probabilities).

    Args:
        input_dirs: Prediction folders with ``CASE.npz`` + ``CASE.pkl`` (``nnUNetv2_predict
            --save_probabilities`` or ``fold_k/validation`` of ``nnUNetv2_train --npz``). With
            ``spec``, they replace the spec's folders in the same order; may be ``None`` then.
        output_dir: Destination (created). Gets ``CASE<file_ending>`` label files (uint8),
            ``dataset.json``, ``plans.json`` and ``nnunet_ext_ensemble.json`` (provenance).
        weights: One global weight per folder (default: equal weights, identical to
            ``nnUNetv2_ensemble``).
        label_weights: Per folder, label name or value -> weight, overriding ``weights``.
        spec: An :class:`EnsembleSpec` or the path of a spec JSON (instead of the weights).
        save_probabilities: Also write the fused ``CASE.npz`` and ``CASE.pkl``.
        num_workers: Cases fused at the same time (threads; each holds one accumulator).
        overwrite: Redo cases whose outputs exist (default: skip them, so a rerun resumes).
        allow_missing: Fuse each case from the folders that have it instead of failing.
        use_isal: ``None``: inflate with ISA-L when installed; ``False``: standard zlib.
        executor: Where the cases run (default: local, ``num_workers`` threads); with Ray each
            case is one Ray task.

    Returns:
        What was written and skipped.

    Raises:
        ValueError: For inconsistent or corrupt inputs (message names the file or case).
        FileNotFoundError, NotADirectoryError: For missing inputs.
        FileExistsError: If ``output_dir`` holds an ensemble of other inputs and not ``overwrite``.
    """
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers must be an int >= 1; got {num_workers!r}.")
    plan = plan_ensemble(
        input_dirs,
        output_dir,
        weights=weights,
        label_weights=label_weights,
        spec=spec,
        save_probabilities=save_probabilities,
        overwrite=overwrite,
        allow_missing=allow_missing,
    )
    out = plan.output_dir
    out.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temporaries(out)
    if stale:
        logger.info("removed %d temporary file(s) of an interrupted run", len(stale))
    for source in (plan.dataset_json_file, plan.plans_json_file):
        with atomic_path(out / source.name) as tmp:
            shutil.copyfile(source, tmp)
    write_json(out / PROVENANCE_FILE, {**plan.provenance, "complete": False})
    writer = reader_writer(plan.image_reader_writer)
    regions = plan.label_spec.regions_class_order if plan.label_spec.has_regions else None
    if plan.skipped:
        logger.info("skipping %d complete case(s) (use --overwrite to redo)", len(plan.skipped))
    written: list[str] = []
    workers = min(num_workers, max(len(plan.jobs), 1))
    options = {"writer": writer, "regions_class_order": regions, "use_isal": use_isal}
    if executor is not None and executor.is_ray:
        run_job = functools.partial(_run_job, **options)
        written = map_cases(run_job, plan.jobs, desc="ensemble", executor=executor)
    elif workers <= 1:
        for job in progress(plan.jobs, total=len(plan.jobs), desc="ensemble"):
            written.append(_run_job(job, **options))
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ensemble") as pool:
            futures = [pool.submit(_run_job, job, **options) for job in plan.jobs]
            try:
                for future in progress(as_completed(futures), total=len(futures), desc="ensemble"):
                    written.append(future.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    all_cases = sorted(set(written) | set(plan.skipped))
    write_json(out / PROVENANCE_FILE, {**plan.provenance, "complete": True, "cases": all_cases})
    logger.info("fused %d case(s) into %s (%d skipped)", len(written), out, len(plan.skipped))
    return EnsembleSummary(
        output_dir=out,
        written=tuple(sorted(written)),
        skipped=plan.skipped,
        ignored=plan.ignored,
        weights=tuple(tuple(float(v) for v in row) for row in plan.weights),
    )
