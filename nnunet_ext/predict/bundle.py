"""``nnunet-ext predict --bundle``: the whole recipe of an exported bundle, after verifying it.

The bundle (``nnunet-ext export``) is verified while it is extracted into a temporary
``nnUNet_results`` folder: a changed or damaged file stops the run before any output exists,
naming the file. Then its members predict with its ensemble spec (weights, per-label weights,
rules) in one pass (:func:`~nnunet_ext.predict.folders.predict_folder`) into a temporary folder,
and its postprocessing plan (none: the labels unchanged) writes the final labels to the output
folder (:func:`~nnunet_ext.postprocess.folders.postprocess_folder`; a plan with
``min_probability`` steps reads the fused probabilities the prediction then keeps in the
temporary folder).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from nnunet_ext.io import write_json
from nnunet_ext.io.bundle import extract_bundle
from nnunet_ext.io.outputs import Output, check_outputs, guard_outputs
from nnunet_ext.postprocess.folders import postprocess_folder
from nnunet_ext.postprocess.plan import PostprocessingPlan, load_plan
from nnunet_ext.predict.folders import predict_folder
from nnunet_ext.predict.plan import check_settings

__all__ = ["BUNDLE_RECORD", "predict_bundle"]

#: Provenance of a bundle prediction, written into the output folder.
BUNDLE_RECORD = "nnunet_ext_bundle.json"


def predict_bundle(
    bundle: str | os.PathLike[str],
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    step_size: float = 0.5,
    disable_tta: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    num_workers: int = 1,
) -> dict[str, Any]:
    """Verify ``bundle``, then predict ``input_dir`` with its members, weights and plan.

    Args:
        bundle: Zip written by :func:`nnunet_ext.export.export_bundle`.
        input_dir: nnU-Net image folder (``CASE_0000.nii.gz`` ...).
        output_dir: Destination of the final (postprocessed) labels.
        step_size: Sliding-window step (nnU-Net's 0.5).
        disable_tta: Predict without mirroring.
        device: ``cpu``, ``cuda`` or ``mps`` (default: cuda if available, else cpu).
        overwrite: Redo cases whose outputs exist.
        num_workers: CPU worker processes (N >= 2: the pipeline, as ``predict -j N``).

    Returns:
        The summary printed by the command (cases written and skipped, bundle digest).

    Raises:
        InputError: If the bundle fails its checks (nothing is written).
        ValueError, FileNotFoundError, NotADirectoryError, FileExistsError: For other bad input.
    """
    source, out = Path(bundle), Path(output_dir)
    check_settings(step_size, device)  # before the bundle is extracted
    check_outputs(
        [Output(out, "output_dir", folder=True, cases=True)],
        inputs=[source, input_dir],
        overwrite=overwrite,
    )
    with tempfile.TemporaryDirectory(prefix="nnunet_ext-bundle-") as scratch:
        results = Path(scratch) / "nnUNet_results"
        info = extract_bundle(source, results)
        plan = (
            PostprocessingPlan() if info.plan_path is None else load_plan(results / info.plan_path)
        )
        with guard_outputs(
            [Output(out, "output_dir", folder=True, cases=True)],
            inputs=[source, input_dir],
            overwrite=overwrite,
            command="nnunet-ext predict --bundle",
        ):
            predicted = predict_folder(
                input_dir,
                Path(scratch) / "predicted",
                spec=results / info.spec_path,
                step_size=step_size,
                disable_tta=disable_tta,
                device=device,
                save_probabilities=plan.needs_probabilities,  # for min_probability steps
                num_workers=num_workers,
            )
            result = postprocess_folder(
                predicted.output_dir,
                out,
                plan=plan,
                overwrite=overwrite,
                probabilities_dir=predicted.output_dir if plan.needs_probabilities else None,
            )
            record = {
                "schema_version": 1,
                "tool": "nnunet_ext.predict.bundle",
                "bundle": str(source.resolve()),
                "manifest": info.manifest,
                "settings": predicted.provenance["settings"],
            }
            write_json(out / BUNDLE_RECORD, record)
    return {
        "output_dir": str(out),
        "bundle": str(source),
        "written": list(result.written),
        "skipped": list(result.skipped),
    }
