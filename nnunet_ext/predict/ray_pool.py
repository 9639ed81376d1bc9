"""``predict --executor ray``: an actor pool on a Ray cluster, each actor loading the members once.

One actor per GPU (``num_gpus=1``) when the cluster has GPUs and the device is not ``cpu``,
otherwise one per ``cpus_per_worker`` CPUs; at most one per case. Ray's
:class:`ray.util.ActorPool` hands each idle actor the next case (load-balanced, not a static
split). An actor writes a case with the same claim files and atomic renames as a local
``--claim`` run (:mod:`nnunet_ext.predict.claims`), so no case is written twice. When an actor's
process dies, Ray restarts the actor (``max_restarts``) and re-runs its case
(``max_task_retries``); the new attempt retakes the dead process's claim, which the summary
counts as a retry. Imported only with ``--executor ray``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnunet_ext._parallel import progress, worker_name
from nnunet_ext._ray import TASK_RETRIES, check_writable_from_worker, ray_session, reraise_cause
from nnunet_ext.io.images import CaseInput
from nnunet_ext.predict.claims import ClaimStore
from nnunet_ext.predict.plan import PredictPlan
from nnunet_ext.predict.writing import case_done, predict_and_write, write_shared_files

__all__ = ["PredictWorker", "RayPredictJob", "predict_on_ray"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayPredictJob:
    """What every actor needs: the plan and the output rules.

    Attributes:
        plan: The validated plan.
        out: The output folder (on a filesystem every node sees).
        save: Also write the fused probabilities.
        overwrite: Redo cases whose outputs exist.
        claim_timeout: Heartbeat age after which another host's claim expires.
        cpus_per_worker: CPUs of one CPU actor (also its torch threads).
    """

    plan: PredictPlan
    out: Path
    save: bool
    overwrite: bool
    claim_timeout: float
    cpus_per_worker: int


class PredictWorker:
    """A Ray actor's state: the loaded members; predicts the cases it is handed."""

    def __init__(self, job: RayPredictJob, use_gpu: bool) -> None:
        import torch

        from nnunet_ext.predict.engine import EnsemblePredictor

        self.job = job
        self.store = ClaimStore(job.out, timeout=job.claim_timeout)
        self.name = worker_name()
        # an error here is raised by every call, as the task's own one-line error (an error in
        # __init__ would reach the caller only as Ray's multi-line "actor died")
        self.error: Exception | None = None
        try:
            self.predictor = EnsemblePredictor(job.plan)
        except Exception as err:
            self.error = err
            return
        if self.predictor.device.type == "cpu" and not use_gpu:
            torch.set_num_threads(job.cpus_per_worker)

    def describe(self) -> tuple[str, list[list[int] | None]]:
        """The device type and the mirror axes each member uses (for the provenance)."""
        if self.error is not None:
            raise self.error
        return self.predictor.device.type, list(self.predictor.mirror_axes)

    def predict_case(self, case: CaseInput) -> dict[str, Any]:
        """Claim, predict and write one case (waits while a live process holds its claim).

        Returns:
            ``{"case", "worker", "written", "retried"}``.
        """
        if self.error is not None:
            raise self.error
        job, case_id = self.job, case.case_id
        poll = min(5.0, job.claim_timeout / 10)
        while True:
            if not job.overwrite and case_done(job.out, case_id, job.plan.file_ending, job.save):
                return {"case": case_id, "worker": self.name, "written": False, "retried": False}
            retaken = len(self.store.retaken)
            held = self.store.try_claim(case_id)
            if held is None:
                time.sleep(poll)
                continue
            try:
                retried = len(self.store.retaken) > retaken
                if not job.overwrite and case_done(
                    job.out, case_id, job.plan.file_ending, job.save
                ):
                    written = False
                elif predict_and_write(
                    self.predictor, job.plan, case, job.out, job.save, still_ours=held.held
                ):
                    written = True
                else:
                    continue  # lost the claim: look again
            finally:
                held.release()
            return {"case": case_id, "worker": self.name, "written": written, "retried": retried}


def _actor_options(ray: Any, job: RayPredictJob, num_cases: int) -> tuple[int, dict[str, Any]]:
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    use_gpu = gpus > 0 and job.plan.settings["device"] in (None, "cuda")
    if use_gpu:
        count, options = gpus, {"num_gpus": 1, "num_cpus": 1}
    else:
        cpus = int(resources.get("CPU", 1))
        count, options = cpus // job.cpus_per_worker, {"num_cpus": job.cpus_per_worker}
    options |= {"max_restarts": TASK_RETRIES, "max_task_retries": TASK_RETRIES}
    return max(1, min(count, num_cases)), options


def _results(ray: Any, pool: Any, cases: Sequence[CaseInput]) -> Iterator[dict[str, Any]]:
    results = pool.map_unordered(lambda actor, case: actor.predict_case.remote(case), cases)
    while True:
        try:
            yield next(results)
        except StopIteration:
            return
        except Exception as err:
            reraise_cause(ray, err)


def predict_on_ray(
    job: RayPredictJob, cases: Sequence[CaseInput], provenance: dict[str, Any], address: str | None
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Predict ``cases`` on Ray; write the shared files, then the cases.

    Returns:
        Written case ids, skipped case ids, the run record (executor, workers, retries).
    """
    with ray_session(address) as ray:
        from ray.util import ActorPool

        check_writable_from_worker(ray, job.out)
        count, options = _actor_options(ray, job, len(cases))
        actor_class = ray.remote(**options)(PredictWorker)
        actors = [actor_class.remote(job, "num_gpus" in options) for _ in range(count)]
        try:
            device, mirror_axes = ray.get(actors[0].describe.remote())
        except Exception as err:
            reraise_cause(ray, err)
        write_shared_files(job.out, job.plan, provenance, device, mirror_axes)
        logger.info("predicting %d case(s) with %d Ray actor(s) %s", len(cases), count, options)
        records = list(progress(_results(ray, ActorPool(actors), cases), total=len(cases)))
        for actor in actors:
            ray.kill(actor)
    ClaimStore(job.out).cleanup()
    written = sorted(r["case"] for r in records if r["written"])
    skipped = sorted(r["case"] for r in records if not r["written"])
    workers = Counter(r["worker"] for r in records)
    run = {
        "executor": "ray",
        "workers": dict(sorted(workers.items())),
        "retries": sum(bool(r["retried"]) for r in records),
    }
    return written, skipped, run
