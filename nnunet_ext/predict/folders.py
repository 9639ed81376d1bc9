"""Predict a folder of images with a weighted ensemble of trained models; resumable and shardable.

Everything is validated before a network is loaded
(:func:`~nnunet_ext.predict.plan.plan_prediction`). Outputs go to temporary names and are renamed
when complete, so a case counts as done only when its final files exist. Work can be split
statically (``part_id``/``num_parts``, as nnU-Net) or dynamically (``claim=True``: processes
sharing the output folder claim cases through claim files, see :mod:`nnunet_ext.predict.claims`).
This module imports torch only when it predicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import nnunet_ext.predict.writing as writing
from nnunet_ext import __version__
from nnunet_ext._parallel import Executor
from nnunet_ext.io import load_json
from nnunet_ext.io.outputs import Output, check_outputs, guard_outputs
from nnunet_ext.postprocess.folders import resolve_plan
from nnunet_ext.postprocess.plan import PostprocessingPlan
from nnunet_ext.predict.local import predict_local
from nnunet_ext.predict.options import RunOptions
from nnunet_ext.predict.plan import (
    DEFAULT_CHECKPOINT,
    CaseInput,
    ModelMember,
    PredictPlan,
    ProbabilityMember,
    plan_prediction,
    select_part,
    verify_images,
)
from nnunet_ext.predict.quality import qc_context, qc_done
from nnunet_ext.predict.ray_pool import RayPredictJob, predict_on_ray
from nnunet_ext.predict.summary import PredictSummary
from nnunet_ext.predict.writing import PROVENANCE_FILE
from nnunet_ext.qc.cases import QcContext, QcOptions, finish_qc

if TYPE_CHECKING:
    from nnunet_ext.predict.engine import CaseResult, EnsemblePredictor

__all__ = ["PROVENANCE_FILE", "PredictSummary", "predict_arrays", "predict_folder"]

logger = logging.getLogger(__name__)


#: What must match for a rerun to resume into an existing output folder.
_RESUME_KEYS = ("members", "weights", "save_probabilities", "file_ending", "postprocessing")
_RESUME_SETTINGS = ("step_size", "disable_tta", "mirror_axes")


def _provenance(plan: PredictPlan, save_probabilities: bool) -> dict[str, Any]:
    from importlib.metadata import version

    pp = plan.postprocessing
    import nnunetv2  # noqa: F401  (version below)

    return {
        "schema_version": 1,
        "tool": "nnunet_ext.predict",
        "version": __version__,
        "nnunetv2_version": version("nnunetv2"),
        "members": [m.to_dict() for m in plan.members],
        "weights": plan.weights.tolist(),
        "spec": plan.spec.to_dict(),
        "settings": dict(plan.settings),
        "save_probabilities": save_probabilities,
        "file_ending": plan.file_ending,
        "postprocessing": None if pp is None else {**pp.to_dict(), "metrics": {}},
    }


def _output(out: Path) -> Output:
    return Output(out, "output_dir", folder=True, cases=True)


def _inputs(plan: PredictPlan, input_dir: Path) -> list[Path]:
    """Every folder the prediction reads: the output may be none of them, nor inside one."""
    inputs = [input_dir, *(m.model_dir for m in plan.models)]
    return inputs + [m.path for m in plan.members if isinstance(m, ProbabilityMember)]


def _check_output(
    out: Path, input_dir: Path, plan: PredictPlan, provenance: dict[str, Any], overwrite: bool
) -> None:
    check_outputs([_output(out)], inputs=_inputs(plan, input_dir), overwrite=overwrite)
    if not out.is_dir() or overwrite:
        return
    previous = out / PROVENANCE_FILE
    if previous.is_file():
        old = load_json(previous)
        old_settings = old.get("settings") if isinstance(old, dict) else None
        if (
            not isinstance(old, dict)
            or not isinstance(old_settings, dict)
            or any(old.get(k) != provenance.get(k) for k in _RESUME_KEYS)
            or any(old_settings.get(k) != provenance["settings"].get(k) for k in _RESUME_SETTINGS)
        ):
            raise FileExistsError(
                f"{out} holds a prediction made with other members or settings ({previous}). "
                "Pass overwrite=True to replace it, or choose another output folder."
            )
        return
    foreign = sorted(p.name for p in out.glob(f"*{plan.file_ending}") if not p.name.startswith("."))
    if foreign:
        raise FileExistsError(
            f"{out} already holds {len(foreign)} label file(s) not written by nnunet-ext predict "
            f"(e.g. {foreign[0]}). Pass overwrite=True to replace them, or choose an empty folder."
        )


# Deliberate duplicate: predict_folder repeats plan_prediction's keyword parameters (it forwards
# them, see _PLAN_ARGUMENTS), so that both public signatures are explicit and typed.
def predict_folder(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    model_dirs: Sequence[str | os.PathLike[str]] | None = None,
    spec: str | os.PathLike[str] | None = None,
    weights: Sequence[float] | None = None,
    label_weights: Sequence[Mapping[str | int, float]] | None = None,
    folds: Sequence[int | str] | None = None,
    checkpoint: str = DEFAULT_CHECKPOINT,
    step_size: float = 0.5,
    disable_tta: bool = False,
    mirror_axes: Sequence[int] | None = None,
    device: str | None = None,
    save_probabilities: bool = False,
    part_id: int = 0,
    num_parts: int = 1,
    claim: bool = False,
    claim_timeout: float = 600.0,
    poll_interval: float | None = None,
    overwrite: bool = False,
    executor: Executor | None = None,
    cpus_per_worker: int = 1,
    allow_unsafe_checkpoints: bool = False,
    postprocessing: PostprocessingPlan | str | os.PathLike[str] | None = None,
    qc: QcOptions | None = None,
    num_workers: int = 1,
) -> PredictSummary:
    """Predict every case of ``input_dir`` with a weighted ensemble and write the fused labels.

    Args:
        input_dir: nnU-Net image folder (``CASE_0000.nii.gz`` ...).
        output_dir: Destination: ``CASE<file_ending>`` (uint8, nnU-Net's writer), ``dataset.json``,
            ``plans.json`` and ``nnunet_ext_predict.json`` (provenance: members, weights, settings).
        model_dirs: Trained model folders (``TRAINER__PLANS__CONFIG``), or use ``spec``.
        spec: Predict spec JSON (``model`` and ``path`` members with weights).
        weights: One global weight per model folder (default equal: ``nnUNetv2_ensemble``).
        label_weights: Per model folder, label name or value -> weight.
        folds: Folds of every model member (default: all with the checkpoint, like nnU-Net).
        checkpoint: Checkpoint file name (a spec member's ``checkpoint`` overrides it).
        step_size: Sliding-window step as a fraction of the patch (nnU-Net's 0.5).
        disable_tta: Predict without mirroring (about 4x/8x faster in 2d/3d).
        mirror_axes: Mirror only these axes (each model uses those it allows; 2d models 0, 1).
        device: ``cpu``, ``cuda`` or ``mps`` (default: cuda if available, else cpu).
        save_probabilities: Also write the fused ``CASE.npz`` + ``CASE.pkl``.
        part_id: This process's part (``nnUNetv2_predict -part_id``).
        num_parts: Number of parts (``-num_parts``).
        claim: Share cases with other processes on the same output folder through claim files.
        claim_timeout: Seconds without heartbeat after which another host's claim expires.
        poll_interval: With ``claim``, seconds to wait before looking again at cases claimed by
            others (default ``min(5, claim_timeout / 10)``).
        overwrite: Redo cases whose outputs exist (default: skip them; a rerun resumes).
        executor: Where to predict (default local: this process). With Ray, an actor pool
            (:mod:`nnunet_ext.predict.ray_pool`) shares the cases through claim files.
        cpus_per_worker: Ray on CPU-only nodes: CPUs (and torch threads) of one actor.
        allow_unsafe_checkpoints: Load checkpoints whose pickle names globals outside
            :data:`~nnunet_ext.io.checkpoints.CHECKPOINT_GLOBALS`, with
            ``torch.load(weights_only=False)``: this runs code from the files. Only for files
            you made or trust.
        postprocessing: A postprocessing plan (or its JSON) applied to each case before its
            one label write; the labels equal ``postprocess apply`` on the plain output.
        qc: Also write ``qc.json`` and ``qc.csv`` (:mod:`nnunet_ext.qc`; local, one part).
        num_workers: CPU worker processes of a local run: 1 (default) predicts case by case;
            N >= 2 overlaps preprocessing (one process) and export (N - 1 processes) with the
            networks (:mod:`nnunet_ext.predict.local`); the files are byte-identical.

    Returns:
        What was written and skipped.

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError, FileExistsError: For bad input,
            before any network is loaded and before the output folder is created.
        OutputLockedError: Without ``claim``, another run is writing ``output_dir``.
    """
    start = time.perf_counter()
    run = RunOptions(
        save_probabilities=bool(save_probabilities),
        part_id=part_id,
        num_parts=num_parts,
        claim=bool(claim),
        claim_timeout=claim_timeout,
        poll_interval=poll_interval,
        overwrite=bool(overwrite),
        cpus_per_worker=cpus_per_worker,
        num_workers=num_workers,
    )
    plan = plan_prediction(
        input_dir,
        model_dirs=model_dirs,
        spec=spec,
        weights=weights,
        label_weights=label_weights,
        folds=folds,
        checkpoint=checkpoint,
        step_size=step_size,
        disable_tta=disable_tta,
        mirror_axes=mirror_axes,
        device=device or "cpu",
        allow_unsafe_checkpoints=allow_unsafe_checkpoints,
    )
    if device is None:
        plan.settings["device"] = None
    pp = resolve_plan(postprocessing, label_spec=plan.label_spec)
    plan = dataclasses.replace(plan, postprocessing=pp)
    executor = executor or Executor()
    run.check_pipeline(ray=executor.is_ray, qc=qc is not None)
    context = qc_context(plan, Path(output_dir), qc, run, ray=executor.is_ray) if qc else None
    cases, out, provenance = _prepare_output(plan, Path(input_dir), Path(output_dir), run)
    done = [c.case_id for c in cases if _case_done(out, c, plan, run)]
    done = [case for case in done if qc_done(context, case)]
    if not run.overwrite and len(done) == len(cases):
        _finish_qc_only(out, plan, Path(input_dir), run, context, done)
        record = {"executor": executor.kind, "workers": {}, "retries": 0, "wall_s": 0.0}
        return PredictSummary(out, (), tuple(done), provenance, record)
    with _output_guard(out, plan, Path(input_dir), run):
        if executor.is_ray:
            written, skipped, record = _predict_ray(
                plan, cases, done, out, provenance, run, executor
            )
        else:
            written, skipped, record = predict_local(plan, cases, out, provenance, run, context)
            if context is not None:
                finish_qc(context, [c.case_id for c in cases])
    record["wall_s"] = round(time.perf_counter() - start, 3)
    logger.info("predicted %d case(s) into %s (%d skipped)", len(written), out, len(skipped))
    return PredictSummary(out, tuple(written), tuple(sorted(skipped)), provenance, record)


def _finish_qc_only(
    out: Path,
    plan: PredictPlan,
    input_dir: Path,
    run: RunOptions,
    context: QcContext | None,
    done: list[str],
) -> None:
    """Every case is complete: only the QC report may be left to write."""
    logger.info("all %d case(s) are complete in %s", len(done), out)
    if context is not None:
        with _output_guard(out, plan, input_dir, run):
            finish_qc(context, done)


def _case_done(out: Path, case: CaseInput, plan: PredictPlan, run: RunOptions) -> bool:
    return writing.case_done(out, case.case_id, plan.file_ending, run.save_probabilities)


@contextlib.contextmanager
def _output_guard(out: Path, plan: PredictPlan, input_dir: Path, run: RunOptions) -> Iterator[None]:
    """The output folder's guard: checks, creation, clean-up on failure, and the lock.

    Without ``claim`` this run is the folder's one writer (a second run is refused at once,
    naming the first); with ``claim`` processes share the folder through claim files, so no
    lock is taken and nobody's temporary files are removed.
    """
    if run.claim:  # checked by _prepare_output; the claims share the folder
        yield
        return
    with guard_outputs(
        [_output(out)],
        inputs=_inputs(plan, input_dir),
        overwrite=run.overwrite,
        command="nnunet-ext predict",
    ):
        yield


def _prepare_output(
    plan: PredictPlan, input_dir: Path, out: Path, run: RunOptions
) -> tuple[list[CaseInput], Path, dict[str, Any]]:
    """This part's cases (images verified), the output folder checked, the provenance."""
    cases: list[CaseInput] = select_part(plan.cases, run.part_id, run.num_parts)
    verify_images(cases, plan.first_model)
    provenance = _provenance(plan, run.save_probabilities)
    _check_output(out, input_dir, plan, provenance, run.overwrite)
    return cases, out, provenance


def _predict_ray(
    plan: PredictPlan,
    cases: Sequence[CaseInput],
    done: Sequence[str],
    out: Path,
    provenance: dict[str, Any],
    run: RunOptions,
    executor: Executor,
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Predict the cases still to do on Ray (:mod:`nnunet_ext.predict.ray_pool`)."""
    job = RayPredictJob(
        plan,
        out,
        run.save_probabilities,
        run.overwrite,
        run.claim_timeout,
        run.cpus_per_worker,
    )
    todo = cases if run.overwrite else [c for c in cases if c.case_id not in set(done)]
    written, skipped, record = predict_on_ray(job, todo, provenance, executor.address)
    return written, skipped + ([] if run.overwrite else list(done)), record


def predict_arrays(
    images: Sequence[str | os.PathLike[str]] | np.ndarray,
    *,
    model_dirs: Sequence[str | os.PathLike[str]] | None = None,
    weights: Sequence[float] | None = None,
    label_weights: Sequence[Mapping[str | int, float]] | None = None,
    folds: Sequence[int | str] | None = None,
    checkpoint: str = DEFAULT_CHECKPOINT,
    properties: Mapping[str, Any] | None = None,
    step_size: float = 0.5,
    disable_tta: bool = False,
    mirror_axes: Sequence[int] | None = None,
    device: str | None = None,
    predictor: EnsemblePredictor | None = None,
    allow_unsafe_checkpoints: bool = False,
) -> CaseResult:
    """Predict one image in memory (for notebooks): labels and fused probabilities as arrays.

    Args:
        images: The channel files of one case (``CASE_0000.nii.gz`` ...), or an array
            ``(C, z, y, x)`` (``(C, 1, y, x)`` for 2D) together with ``properties``.
        model_dirs: Trained model folders (as :func:`predict_folder`).
        weights: One global weight per model folder.
        label_weights: Per model folder, label name or value -> weight.
        folds: Folds of every model (default: all with the checkpoint).
        checkpoint: Checkpoint file name.
        properties: For an array: ``{"spacing": [z, y, x]}`` (nnU-Net's ``predict_single_npy_array``
            convention).
        step_size: Sliding-window step (nnU-Net's 0.5).
        disable_tta: Predict without mirroring.
        mirror_axes: Mirror only these axes.
        device: ``cpu``, ``cuda`` or ``mps`` (default: cuda if available, else cpu).
        predictor: A loaded :class:`~nnunet_ext.predict.engine.EnsemblePredictor` to reuse across
            calls (then the model arguments are ignored).
        allow_unsafe_checkpoints: As :func:`predict_folder` (runs code from the checkpoints).

    Returns:
        :class:`~nnunet_ext.predict.engine.CaseResult` with ``labels``, ``probabilities`` and
        ``properties``.
    """
    if predictor is None:
        # Deliberate duplicate: planned as predict_folder plans (no input folder, no spec), with
        # every argument named, so that the two public signatures stay explicit and typed.
        if not model_dirs:
            raise ValueError("model_dirs must list at least one trained model folder; got none.")
        plan = plan_prediction(
            None,
            model_dirs=model_dirs,
            weights=weights,
            label_weights=label_weights,
            folds=folds,
            checkpoint=checkpoint,
            step_size=step_size,
            disable_tta=disable_tta,
            mirror_axes=mirror_axes,
            device=device or "cpu",
            allow_unsafe_checkpoints=allow_unsafe_checkpoints,
        )
        if device is None:
            plan.settings["device"] = None
        predictor = _load(plan)
    if isinstance(images, np.ndarray):
        if properties is None or "spacing" not in properties:
            raise ValueError("properties must give the 'spacing' of an array image; got none.")
        return predictor.predict(images, properties=dict(properties))
    files = [Path(f) for f in images]
    models = [m for m in predictor.plan.members if isinstance(m, ModelMember)]
    if len(files) != models[0].num_channels:
        raise ValueError(
            f"images must list the model's {models[0].num_channels} channel file(s); "
            f"got {len(files)}."
        )
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"image not found: {file}")
    verify_images([CaseInput("images", tuple(files))], models[0])
    return predictor.predict(files)


def _load(plan: PredictPlan) -> EnsemblePredictor:
    """Load the plan's networks (imports torch)."""
    from nnunet_ext.predict.engine import EnsemblePredictor

    return EnsemblePredictor(plan)
