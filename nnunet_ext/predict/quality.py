"""``predict --qc``: the QC context of a prediction run (:mod:`nnunet_ext.qc`).

Each case's record is written by :func:`~nnunet_ext.predict.writing.predict_and_write` before its
label file; :func:`~nnunet_ext.qc.cases.finish_qc` writes ``qc.json`` and ``qc.csv`` once every
case of the run is done. QC runs in one local process: with ``claim``, several parts or Ray,
no process knows when the folder is complete.
"""

from __future__ import annotations

from pathlib import Path

from nnunet_ext.predict.options import RunOptions
from nnunet_ext.predict.plan import ModelMember, PredictPlan
from nnunet_ext.qc.cases import QcContext, QcOptions, member_names, record_file

__all__ = ["qc_context", "qc_done"]


def qc_context(
    plan: PredictPlan, output_dir: Path, qc: QcOptions, run: RunOptions, *, ray: bool
) -> QcContext:
    """The QC context of a prediction run, refused where QC cannot finish or does not apply.

    Raises:
        ValueError: With ``claim``, ``num_parts > 1`` or Ray, or for region-based models.
    """
    if run.claim or run.num_parts > 1 or ray:
        raise ValueError(
            "qc must run in one local process that predicts every case; got claim=True, "
            "num_parts > 1 or the Ray executor. Predict with save_probabilities=True, then fuse "
            "the folders with the ensemble's qc; or drop qc."
        )
    if plan.label_spec.has_regions:
        raise ValueError(
            "qc must be used with label (softmax) models; these models predict regions. "
            "Run without qc."
        )
    paths = [m.configuration if isinstance(m, ModelMember) else str(m.path) for m in plan.members]
    names = member_names(paths, [m.name for m in plan.spec.members])
    label_names = {int(v): k for k, v in plan.label_spec.foreground.items() if isinstance(v, int)}
    return QcContext(
        options=qc,
        thresholds=qc.resolve(plan.spec.qc),
        output_dir=output_dir,
        member_names=names,
        label_names=label_names,
        file_ending=plan.file_ending,
        writer_name=plan.first_model.plans["image_reader_writer"],
    )


def qc_done(context: QcContext | None, case_id: str) -> bool:
    """Whether the case's QC record exists (always ``True`` without QC)."""
    return context is None or record_file(context.output_dir, case_id).is_file()
