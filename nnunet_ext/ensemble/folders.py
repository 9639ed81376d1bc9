"""Fuse nnU-Net prediction folders: streaming fusion, atomic outputs, resumable runs.

:func:`ensemble_folders` validates everything first
(:func:`~nnunet_ext.ensemble.plan.plan_ensemble`), then fuses each case by streaming the
decompressed members chunk by chunk into one float32 accumulator, converts it to labels like
nnU-Net's LabelManager and writes them with nnU-Net's own image writer (from ``plans.json``) to a
temporary name that is renamed when complete. The cases run through the executor layer
(:func:`nnunet_ext._parallel.map_cases`: ``num_workers`` threads, or Ray). A rerun skips complete
cases.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._parallel import Executor, map_cases
from nnunet_ext.ensemble.channels import label_channels
from nnunet_ext.ensemble.fusion import FusionAccumulator, probabilities_to_labels
from nnunet_ext.ensemble.plan import (
    MAX_WRITTEN_LABEL,
    PROVENANCE_FILE,
    CaseJob,
    EnsemblePlan,
    plan_ensemble,
)
from nnunet_ext.ensemble.spec import EnsembleSpec
from nnunet_ext.ensemble.volumes import region_volume_warnings
from nnunet_ext.io import (
    LabelSpec,
    atomic_path,
    reader_writer,
    remove_stale_temporaries,
    write_json,
)
from nnunet_ext.io.probabilities import iter_probability_chunks, read_probabilities
from nnunet_ext.postprocess.in_pass import write_through_plan
from nnunet_ext.postprocess.plan import PostprocessingPlan
from nnunet_ext.qc.cases import QcContext, QcOptions, check_case, finish_qc, member_names

__all__ = ["EnsembleSummary", "ensemble_folders", "fuse_case"]

logger = logging.getLogger(__name__)


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
    job: CaseJob,
    *,
    use_isal: bool | None = None,
    every_member: bool = False,
    regions: bool = False,
) -> tuple[NDArray[np.float32], dict[int, NDArray[Any]], NDArray[np.int64]]:
    """Fused probabilities, the argmax of the members ``from`` rules (or the QC) need, counts.

    With ``regions``, the counts are each member's voxels above the channel's threshold.
    """
    accumulator = FusionAccumulator(
        job.members[0].shape,
        weights=job.weights,
        num_members=len(job.members),
        argmax_members=range(len(job.members)) if every_member else job.rules.members,
        count_above=(job.rules.thresholds or (0.5,) * job.members[0].shape[0]) if regions else None,
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
    return fused, accumulator.member_labels(), accumulator.member_counts()


def _channel_names(label_spec: LabelSpec) -> list[str]:
    """The name of each probability channel (its first name in ``dataset.json``)."""
    names: dict[int, str] = {}
    for name, channel in label_channels(label_spec)[1].items():
        names.setdefault(channel, name)
    return [names[c] for c in sorted(names)]


def _run_job(
    job: CaseJob,
    *,
    writer: Any,
    regions_class_order: Sequence[int] | None,
    use_isal: bool | None,
    region_names: Sequence[str] = (),
    postprocessing: PostprocessingPlan | None = None,
    qc: QcContext | None = None,
) -> str:
    fused, member_labels, counts = _fuse(
        job,
        use_isal=use_isal,
        every_member=qc is not None,
        regions=regions_class_order is not None,
    )
    labels = probabilities_to_labels(
        fused, regions_class_order=regions_class_order, rules=job.rules, member_labels=member_labels
    )
    if regions_class_order is not None:
        thresholds = job.rules.thresholds or (0.5,) * fused.shape[0]
        volumes = [
            int(np.count_nonzero(f > f.dtype.type(t)))
            for f, t in zip(fused, thresholds, strict=True)
        ]
        for text in region_volume_warnings(job.case_id, volumes, counts.tolist(), region_names):
            logger.warning("%s", text)
    if qc is not None:  # the record before the label file, which marks the case complete
        members = [member_labels[m] for m in range(len(job.members))]
        check_case(qc, job.case_id, fused, labels, members, job.properties, job.weights)
    del member_labels
    if labels.size and int(labels.max()) > MAX_WRITTEN_LABEL:
        raise ValueError(
            f"case {job.case_id!r}: labels must be <= {MAX_WRITTEN_LABEL} to be written as uint8; "
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
    if postprocessing is not None:  # as postprocess apply writes it, from the fused values
        write_through_plan(
            lambda array, path: writer.write_seg(array, str(path), job.properties),
            labels,
            job.label_file,
            postprocessing,
            probabilities=fused if postprocessing.needs_probabilities else None,
        )
        return job.case_id
    del fused
    with atomic_path(job.label_file) as tmp:
        writer.write_seg(labels, str(tmp), job.properties)
    return job.case_id


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
    postprocessing: PostprocessingPlan | str | os.PathLike[str] | None = None,
    qc: QcOptions | None = None,
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
        postprocessing: A postprocessing plan (or its JSON) applied to each case before its
            one label write (``min_probability`` reads the fused values); the labels equal
            ``postprocess apply`` on the plain output. The fused probabilities stay as fused.
        qc: Also write ``qc.json`` and ``qc.csv`` (:mod:`nnunet_ext.qc`): per case and label,
            the members' disagreement and the flags; thresholds from ``qc``, else the spec's.

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
        postprocessing=postprocessing,
        qc=qc is not None,
    )
    qc_context = _qc_context(plan, qc, allow_missing) if qc is not None else None
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
    run_job = functools.partial(
        _run_job,
        writer=writer,
        regions_class_order=regions,
        use_isal=use_isal,
        region_names=_channel_names(plan.label_spec) if regions else (),
        postprocessing=plan.postprocessing,
        qc=qc_context,
    )
    written = map_cases(
        run_job,
        plan.jobs,
        num_workers=num_workers,
        desc="ensemble",
        executor=executor,
        threads=True,
    )
    all_cases = sorted(set(written) | set(plan.skipped))
    if qc_context is not None:
        report = finish_qc(qc_context, all_cases)
        logger.info("QC: %d of %d case(s) flagged", len(report.flagged), len(report.cases))
    write_json(out / PROVENANCE_FILE, {**plan.provenance, "complete": True, "cases": all_cases})
    logger.info("fused %d case(s) into %s (%d skipped)", len(written), out, len(plan.skipped))
    return EnsembleSummary(
        output_dir=out,
        written=tuple(sorted(written)),
        skipped=plan.skipped,
        ignored=plan.ignored,
        weights=tuple(tuple(float(v) for v in row) for row in plan.weights),
    )


def _qc_context(plan: EnsemblePlan, qc: QcOptions, allow_missing: bool) -> QcContext:
    """The QC context of ``plan``; QC needs label (softmax) models and every member."""
    if plan.label_spec.has_regions:
        raise ValueError(
            f"qc must be used with label (softmax) predictions; {plan.dataset_json_file} defines "
            "regions. Run without qc."
        )
    if allow_missing:
        raise ValueError(
            "qc must compare every member on every case; got allow_missing=True. Drop one of them."
        )
    names = member_names(plan.spec.input_dirs, [m.name for m in plan.spec.members])
    label_names = {int(v): k for k, v in plan.label_spec.foreground.items() if isinstance(v, int)}
    return QcContext(
        options=qc,
        thresholds=qc.resolve(plan.spec.qc),
        output_dir=plan.output_dir,
        member_names=names,
        label_names=label_names,
        file_ending=plan.file_ending,
        writer_name=plan.image_reader_writer,
    )
