"""Predicting in this process: the serial loop, claimed cases, and the pipeline (``-j N``).

The networks load once, here (:class:`~nnunet_ext.predict.engine.EnsemblePredictor`). With one
worker (the default) each case is read, preprocessed, predicted, exported and written before the
next starts. With ``num_workers`` N >= 2 the cases flow through a pipeline, as
``nnUNetv2_predict`` overlaps its work (``-npp`` preprocessing and ``-nps`` export processes):

- one preprocessing process reads and preprocesses the next case while the networks run;
- the networks run here, one case at a time (a cascade stage's input, which needs the previous
  stage's networks, is preprocessed here too);
- N - 1 export processes bring each member's logits to the original geometry (nnU-Net's export
  step), fuse them and write the case; at most N - 1 finished cases wait for them.

Every step is the same function on the same values as in the serial loop, so the files are
byte-identical; the workers are spawned and run top-level functions.
"""

from __future__ import annotations

import collections
import functools
import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nnunet_ext.predict.writing as writing
from nnunet_ext._parallel import map_cases, worker_name
from nnunet_ext.postprocess.plan import PostprocessingPlan
from nnunet_ext.predict.claims import ClaimStore
from nnunet_ext.predict.options import RunOptions
from nnunet_ext.predict.plan import CaseInput, PredictPlan
from nnunet_ext.predict.quality import qc_done
from nnunet_ext.qc.cases import QcContext

if TYPE_CHECKING:
    from nnunet_ext.predict.engine import EnsemblePredictor, FusionJob

__all__ = ["predict_local"]

logger = logging.getLogger(__name__)


def predict_local(
    plan: PredictPlan,
    cases: Sequence[CaseInput],
    out: Path,
    provenance: dict[str, Any],
    run: RunOptions,
    qc: QcContext | None = None,
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Predict in this process (all cases, or those it claims); the run record as Ray's."""
    from nnunet_ext.predict.engine import EnsemblePredictor

    predictor = EnsemblePredictor(plan)
    writing.write_shared_files(out, plan, provenance, predictor.device.type, predictor.mirror_axes)
    save, overwrite = run.save_probabilities, run.overwrite
    retries = 0
    if run.claim:
        store = ClaimStore(out, timeout=run.claim_timeout)
        written, skipped = _run_claimed(predictor, plan, cases, out, save, store, run)
        retries = len(store.retaken)
    else:
        if run.num_workers > 1:
            done = _pipeline(predictor, plan, cases, out, run)
        else:
            # the one execution layer, in this process: the loaded networks stay here
            step = functools.partial(_predict_case, predictor, plan, out, save, overwrite, qc)
            done = map_cases(step, list(cases), num_workers=1, desc="predict")
        written = [c.case_id for c, wrote in zip(cases, done, strict=True) if wrote]
        skipped = [c.case_id for c, wrote in zip(cases, done, strict=True) if not wrote]
    workers = {worker_name(): len(written) + len(skipped)} if cases else {}
    return written, skipped, {"executor": "local", "workers": workers, "retries": retries}


def _predict_case(
    predictor: EnsemblePredictor,
    plan: PredictPlan,
    out: Path,
    save: bool,
    overwrite: bool,
    qc: QcContext | None,
    case: CaseInput,
) -> bool:
    """Predict and write one case; ``False`` if its outputs exist and are kept."""
    done = writing.case_done(out, case.case_id, plan.file_ending, save)
    if not overwrite and done and qc_done(qc, case.case_id):
        return False
    writing.predict_and_write(predictor, plan, case, out, save, qc=qc)
    return True


def _export_case(
    job: FusionJob,
    out: Path,
    writer: Any,
    file_ending: str,
    save: bool,
    postprocessing: PostprocessingPlan | None,
) -> None:
    """The export step of one case: resample, fuse, write (an export process's task)."""
    from nnunet_ext.predict.engine import finish_case

    start = time.perf_counter()
    result = finish_case(job)
    case_id = str(job.case_id)
    names = [p.name for p in writing.case_outputs(out, case_id, file_ending, save)]
    writing.remove_case_temporaries(out, names)
    writing.write_case(out, case_id, result, writer, file_ending, save, postprocessing)
    logger.info("wrote %s (export %.1f s)", case_id, time.perf_counter() - start)


def _pipeline(
    predictor: EnsemblePredictor,
    plan: PredictPlan,
    cases: Sequence[CaseInput],
    out: Path,
    run: RunOptions,
) -> list[bool]:
    """Predict ``cases`` with preprocessing and export overlapping the networks."""
    from nnunet_ext.predict.engine import preprocess_case

    save = run.save_probabilities
    todo = [
        c
        for c in cases
        if run.overwrite or not writing.case_done(out, c.case_id, plan.file_ending, save)
    ]
    jobs = predictor.preprocessing_jobs()
    export = functools.partial(
        _export_case,
        out=out,
        writer=predictor.writer(),
        file_ending=plan.file_ending,
        save=save,
        postprocessing=plan.postprocessing,
    )
    spawn = multiprocessing.get_context("spawn")
    exporters = run.num_workers - 1
    with (
        ProcessPoolExecutor(1, mp_context=spawn) as preprocessing,
        ProcessPoolExecutor(exporters, mp_context=spawn) as exporting,
    ):
        ahead: Future[Any] | None = None
        if todo and jobs:
            ahead = preprocessing.submit(preprocess_case, jobs, todo[0].image_files)
        waiting: collections.deque[Future[None]] = collections.deque()
        for position, case in enumerate(todo):
            prepared = ahead.result() if ahead is not None else None
            ahead = None
            if jobs and position + 1 < len(todo):
                ahead = preprocessing.submit(preprocess_case, jobs, todo[position + 1].image_files)
            job = predictor.run_networks(case.image_files, case_id=case.case_id, prepared=prepared)
            del prepared
            waiting.append(exporting.submit(export, job))
            del job
            while len(waiting) > exporters:  # bounded: at most N - 1 cases wait for export
                waiting.popleft().result()
        for future in waiting:
            future.result()
    wrote = {c.case_id for c in todo}
    return [c.case_id in wrote for c in cases]


def _run_claimed(
    predictor: EnsemblePredictor,
    plan: PredictPlan,
    cases: Sequence[CaseInput],
    out: Path,
    save: bool,
    store: ClaimStore,
    run: RunOptions,
) -> tuple[list[str], list[str]]:
    poll = run.poll_seconds
    written: list[str] = []
    while True:
        pending = [
            c for c in cases if not writing.case_done(out, c.case_id, plan.file_ending, save)
        ]
        if not pending:
            break
        progressed = False
        for case in pending:
            if writing.case_done(out, case.case_id, plan.file_ending, save):
                continue
            held = store.try_claim(case.case_id)
            if held is None:
                continue
            try:
                # finished by another process between our listing and our claim
                if writing.case_done(out, case.case_id, plan.file_ending, save):
                    continue
                if writing.predict_and_write(
                    predictor, plan, case, out, save, still_ours=held.held
                ):
                    written.append(case.case_id)
                progressed = True
            finally:
                held.release()
        if not progressed:
            time.sleep(poll)
    store.cleanup()
    skipped = [c.case_id for c in cases if c.case_id not in set(written)]
    return written, skipped
