"""``tune --postprocess``: a postprocessing plan chosen on the CV result fused with the spec.

The plan is that of :mod:`nnunet_ext.postprocess`, determined on what a submission would
postprocess: the CV probabilities fused with the tuned weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nnunet_ext.ensemble.folders import ensemble_folders
from nnunet_ext.io import LabelSpec, load_json
from nnunet_ext.postprocess import determine_plan, save_plan
from nnunet_ext.tune.api import TuneResult

__all__ = ["determine_postprocessing", "postprocessing_paths"]


def postprocessing_paths(spec_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Default ``(fused CV folder, plan JSON)`` beside the spec.

    Examples:
        >>> [p.name for p in postprocessing_paths("out/spec.json")]
        ['spec_cv_fused', 'spec_postprocessing.json']
    """
    spec = Path(spec_path)
    return spec.with_name(f"{spec.stem}_cv_fused"), spec.with_name(
        f"{spec.stem}_postprocessing.json"
    )


def determine_postprocessing(
    result: TuneResult,
    spec_path: str | os.PathLike[str],
    *,
    fused_dir: str | os.PathLike[str] | None = None,
    plan_path: str | os.PathLike[str] | None = None,
    num_workers: int = 1,
) -> tuple[Path, Path, Any]:
    """Fuse the CV probabilities with the tuned spec, then determine the postprocessing plan.

    The fused label files go to ``fused_dir`` (default ``<spec stem>_cv_fused`` beside the
    spec, replaced if present); :func:`nnunet_ext.postprocess.determine_plan` compares them
    with the references of ``result`` on the tuned labels (nnU-Net's rule: a step is kept only
    if it improves the label's mean Dice) and the plan is written to ``plan_path`` (default
    ``<spec stem>_postprocessing.json``), ready for ``nnunet-ext postprocess --plan``.

    Args:
        result: The tuning result whose spec was written to ``spec_path``.
        spec_path: The spec written by :func:`nnunet_ext.tune.write_outputs`.
        fused_dir: Folder for the fused CV label files.
        plan_path: Plan JSON to write.
        num_workers: Cases fused and read at the same time.

    Returns:
        ``(fused_dir, plan_path, plan)``.

    Raises:
        FileNotFoundError: If the spec does not exist.
    """
    spec_file = Path(spec_path)
    if not spec_file.is_file():
        raise FileNotFoundError(
            f"spec {spec_file} must exist; write it first with nnunet_ext.tune.write_outputs."
        )
    default_fused, default_plan = postprocessing_paths(spec_file)
    fused = Path(fused_dir) if fused_dir is not None else default_fused
    plan_file = Path(plan_path) if plan_path is not None else default_plan
    ensemble_folders(
        None,
        fused,
        spec=spec_file,
        num_workers=num_workers,
        overwrite=True,
        allow_missing=bool(result.left_out),
    )
    ignore = None
    dataset_json = fused / "dataset.json"
    if dataset_json.is_file():
        ignore = LabelSpec.from_dataset_json(
            load_json(dataset_json), source=str(dataset_json)
        ).ignore_label
    plan = determine_plan(
        fused,
        result.reference_dir,
        label_ids=result.label_ids,
        ignore_label=ignore,
        num_workers=num_workers,
    )
    save_plan(plan, plan_file)
    return fused, plan_file, plan
