"""Writing one predicted case, and the files shared by an output folder.

Used by the local loop (:mod:`nnunet_ext.predict.folders`) and the Ray actors
(:mod:`nnunet_ext.predict.ray_pool`) alike, so both write the same bytes the same way: every file
under a temporary name, renamed when complete, the label file last (its presence marks the case
done).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnunet_ext.io import TEMP_PREFIX, atomic_path, write_json
from nnunet_ext.io.images import CaseInput
from nnunet_ext.postprocess.in_pass import write_through_plan
from nnunet_ext.postprocess.plan import PostprocessingPlan
from nnunet_ext.predict.plan import PredictPlan
from nnunet_ext.qc.cases import QcContext, check_case

if TYPE_CHECKING:
    from nnunet_ext.predict.engine import CaseResult, EnsemblePredictor

__all__ = [
    "PROVENANCE_FILE",
    "case_done",
    "case_outputs",
    "predict_and_write",
    "remove_case_temporaries",
    "write_case",
    "write_shared_files",
]

logger = logging.getLogger(__name__)

#: Provenance file written into every output folder.
PROVENANCE_FILE = "nnunet_ext_predict.json"


def case_outputs(out: Path, case_id: str, file_ending: str, save_probabilities: bool) -> list[Path]:
    """The files a finished case has in ``out``: ``.npz``/``.pkl`` if asked, the label file last."""
    files = [out / f"{case_id}{file_ending}"]
    if save_probabilities:
        files = [out / f"{case_id}.npz", out / f"{case_id}.pkl", *files]
    return files


def case_done(out: Path, case_id: str, file_ending: str, save_probabilities: bool) -> bool:
    """Whether every output file of ``case_id`` exists (a case is done only when complete)."""
    return all(p.is_file() for p in case_outputs(out, case_id, file_ending, save_probabilities))


def remove_case_temporaries(out: Path, names: Sequence[str]) -> None:
    """Remove temporaries of an interrupted write of these outputs (only this case's)."""
    wanted = set(names)
    for tmp in out.glob(f"{TEMP_PREFIX}*"):
        tail = tmp.name[len(TEMP_PREFIX) :]
        if tail.split("-", 1)[-1] in wanted:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def write_case(
    out: Path,
    case_id: str,
    result: CaseResult,
    writer: Any,
    file_ending: str,
    save_probabilities: bool,
    postprocessing: PostprocessingPlan | None = None,
) -> None:
    """Write one case atomically: probabilities first (if asked), the label file last.

    With ``postprocessing`` the label file is the plan's result on the labels, applied in memory
    and written once as ``postprocess apply`` writes it from the plain output
    (:func:`~nnunet_ext.postprocess.in_pass.write_through_plan`, with the fused probabilities for
    ``min_probability``); the probabilities stay as fused.
    """
    if save_probabilities:
        with atomic_path(out / f"{case_id}.npz") as tmp:
            np.savez_compressed(tmp, probabilities=result.probabilities)
        with atomic_path(out / f"{case_id}.pkl") as tmp, open(tmp, "wb") as handle:
            pickle.dump(result.properties, handle)
    # the label file last: its presence marks the case complete
    final = out / f"{case_id}{file_ending}"
    if postprocessing is not None and not postprocessing.is_empty:
        write_through_plan(
            lambda array, path: writer.write_seg(array, str(path), result.properties),
            result.labels,
            final,
            postprocessing,
            probabilities=result.probabilities,
        )
        return
    with atomic_path(final) as tmp:
        writer.write_seg(result.labels, str(tmp), result.properties)


def write_shared_files(
    out: Path,
    plan: PredictPlan,
    provenance: dict[str, Any],
    device: str,
    mirror_axes: list[list[int] | None],
) -> None:
    """Create the output folder; write dataset.json, plans.json and the provenance."""
    provenance["settings"]["device"] = device
    provenance["settings"]["mirror_axes_used"] = mirror_axes
    out.mkdir(parents=True, exist_ok=True)
    first = plan.first_model
    for name in ("dataset.json", "plans.json"):
        with atomic_path(out / name) as tmp:
            shutil.copyfile(first.model_dir / name, tmp)
    write_json(out / PROVENANCE_FILE, provenance)


def predict_and_write(
    predictor: EnsemblePredictor,
    plan: PredictPlan,
    case: CaseInput,
    out: Path,
    save: bool,
    still_ours: Any = None,
    qc: QcContext | None = None,
) -> bool:
    """Predict one case and write it; ``False`` if ``still_ours`` says the claim was lost.

    With ``qc``, the case's QC record is written before its label file.
    """
    names = [p.name for p in case_outputs(out, case.case_id, plan.file_ending, save)]
    remove_case_temporaries(out, names)
    start = time.perf_counter()
    result = predictor.predict(case.image_files, case_id=case.case_id, every_member=qc is not None)
    if still_ours is not None and not still_ours():
        logger.warning(
            "lost the claim of %s while predicting; another process redoes it", case.case_id
        )
        return False
    if qc is not None:
        check_case(
            qc,
            case.case_id,
            result.probabilities,
            result.labels,
            result.member_labels,
            result.properties,
            plan.fusion_weights,
        )
    write_case(
        out,
        case.case_id,
        result,
        predictor.writer(),
        plan.file_ending,
        save,
        plan.postprocessing,
    )
    logger.info("wrote %s (%.1f s)", case.case_id, time.perf_counter() - start)
    return True
