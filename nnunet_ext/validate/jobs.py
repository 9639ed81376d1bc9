"""What ``nnunet-ext validate`` will do, checked before any work; its side-by-side table.

Pure Python: no torch, no nnunetv2 import.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnunet_ext.io.checkpoints import read_checkpoint
from nnunet_ext.io.model_files import load_model_files
from nnunet_ext.io.models import check_checkpoint_belongs

__all__ = [
    "ValidationJob",
    "format_side_by_side",
    "output_folder_name",
    "plan_validation",
    "read_validation_dice",
]

_FOLD = re.compile(r"^fold_(\d+|all)$")


@dataclass(frozen=True)
class ValidationJob:
    """One checkpoint of one fold to validate.

    Attributes:
        fold_dir: ``.../TRAINER__PLANS__CONF/fold_k``.
        checkpoint: The checkpoint file in it.
        output_dir: ``fold_k/validation_<checkpoint stem>``.
        done: Whether a complete output is already there (and ``--overwrite`` was not given).
    """

    fold_dir: Path
    checkpoint: Path
    output_dir: Path
    done: bool

    @property
    def stem(self) -> str:
        """The checkpoint's file name without ``.pth``."""
        return self.checkpoint.stem


def _checkpoint_file_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise ValueError(
            f"checkpoints must be file names in the fold folder, e.g. checkpoint_best.pth; "
            f"got {name!r}."
        )
    return name if name.endswith(".pth") else f"{name}.pth"


def output_folder_name(checkpoint: str) -> str:
    """The folder a checkpoint's validation goes to (never ``validation`` itself).

    Examples:
        >>> output_folder_name("checkpoint_best_RV.pth"), output_folder_name("checkpoint_final")
        ('validation_checkpoint_best_RV', 'validation_checkpoint_final')
    """
    return f"validation_{Path(_checkpoint_file_name(checkpoint)).stem}"


def _is_complete(folder: Path, *, npz: bool) -> bool:
    if not (folder / "summary.json").is_file():
        return False
    return not npz or any(folder.glob("*.npz"))


def _check_fold(
    fold_dir: Path, environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a fold folder, its model folder and ``nnUNet_preprocessed``; its model files."""
    if not fold_dir.is_dir():
        raise NotADirectoryError(f"fold_dirs must be folders; got {str(fold_dir)!r}.")
    if not _FOLD.match(fold_dir.name):
        folds = sorted(p.name for p in fold_dir.glob("fold_*") if p.is_dir())
        hint = f" It has {', '.join(folds)}: pass those." if folds else ""
        raise ValueError(
            f"fold_dirs must be nnU-Net fold folders named fold_<k>; got {str(fold_dir)!r}.{hint}"
        )
    model_dir = fold_dir.parent

    dataset_json, plans = load_model_files(model_dir, "fold_dirs (fold_k of a model folder)")
    parts = model_dir.name.split("__")
    configurations = plans["configurations"]
    if len(parts) == 3 and isinstance(configurations.get(parts[2]), dict):
        if configurations[parts[2]].get("previous_stage"):
            raise ValueError(
                f"{model_dir.name}: cascade configurations ({parts[2]}) are not supported by "
                "nnunet-ext validate; use nnUNetv2_train --val for them."
            )
    preprocessed = environ.get("nnUNet_preprocessed", "")
    if not preprocessed:
        raise ValueError(
            "nnUNet_preprocessed must be set: nnU-Net's validation reads the preprocessed "
            "validation cases and gt_segmentations from there. Export it as for nnUNetv2_train."
        )
    dataset = plans["dataset_name"]
    base = Path(preprocessed) / str(dataset)
    if not (base / "gt_segmentations").is_dir():
        raise FileNotFoundError(
            f"{base / 'gt_segmentations'} not found: nnUNet_preprocessed={preprocessed!r} must "
            f"hold the preprocessed {dataset} this model was trained on."
        )
    return dataset_json, plans


def plan_validation(
    fold_dirs: Sequence[str | os.PathLike[str]],
    checkpoints: Sequence[str],
    *,
    npz: bool,
    overwrite: bool = False,
    environ: Mapping[str, str] | None = None,
    allow_unsafe_checkpoints: bool = False,
) -> list[ValidationJob]:
    """Check every fold folder and checkpoint and list the validations to run.

    Args:
        fold_dirs: nnU-Net fold folders.
        checkpoints: Checkpoint file names in each (``.pth`` may be left out).
        npz: Whether probabilities are exported (an existing output without ``.npz`` is redone).
        overwrite: Redo outputs that are already complete.
        environ: Environment to read ``nnUNet_preprocessed`` from (default ``os.environ``).
        allow_unsafe_checkpoints: Accept checkpoints whose pickle names other globals than
            :data:`~nnunet_ext.io.checkpoints.CHECKPOINT_GLOBALS` (loading them runs code).

    Returns:
        One job per fold and checkpoint, in the order given.

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError: Naming the folder, file or variable.
    """
    env = os.environ if environ is None else environ
    if not fold_dirs:
        raise ValueError("fold_dirs needs at least one fold folder.")
    if not checkpoints:
        raise ValueError("checkpoints needs at least one checkpoint file name.")
    names = list(dict.fromkeys(_checkpoint_file_name(c) for c in checkpoints))
    jobs = []
    for raw in dict.fromkeys(Path(f) for f in fold_dirs):
        fold_dir = Path(raw)
        dataset_json, plans = _check_fold(fold_dir, env)
        for name in names:
            checkpoint = fold_dir / name
            if not checkpoint.is_file():
                have = sorted(p.name for p in fold_dir.glob("checkpoint*.pth"))
                raise FileNotFoundError(
                    f"checkpoint {str(checkpoint)!r} not found; this fold has "
                    f"{', '.join(have) if have else 'no checkpoint*.pth'}."
                )
            found = read_checkpoint(checkpoint, allow_unsafe=allow_unsafe_checkpoints)
            check_checkpoint_belongs(found, fold_dir.parent, plans=plans, dataset_json=dataset_json)
            output = fold_dir / output_folder_name(name)
            jobs.append(
                ValidationJob(
                    fold_dir, checkpoint, output, _is_complete(output, npz=npz) and not overwrite
                )
            )
    return jobs


def _label_names(dataset_json: Any) -> dict[str, str]:
    """summary.json key (``"1"``, ``"(1, 2)"``) -> label name."""
    labels = dataset_json.get("labels", {}) if isinstance(dataset_json, dict) else {}
    out: dict[str, str] = {}
    for name, value in labels.items():
        if isinstance(value, (list, tuple)):
            key = str(tuple(int(v) for v in value)) if len(value) > 1 else str(int(value[0]))
        else:
            key = str(value)
        out.setdefault(key, str(name))
    return out


def read_validation_dice(folder: str | os.PathLike[str]) -> dict[str, float]:
    """Per-label mean Dice and ``"mean"`` (nnU-Net's ``foreground_mean``) of a validation folder.

    Label names come from the ``dataset.json`` beside the fold folder when present.

    Raises:
        FileNotFoundError: If the folder has no ``summary.json``.
        ValueError: If it is not nnU-Net's summary format.
    """
    root = Path(folder)
    summary_file = root / "summary.json"
    if not summary_file.is_file():
        raise FileNotFoundError(f"{summary_file} not found: the validation did not finish.")
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        means = summary["mean"]
        foreground = float(summary["foreground_mean"]["Dice"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{summary_file}: not an nnU-Net summary.json ({err}).") from err
    dataset_file = root.parent.parent / "dataset.json"
    names = _label_names(json.loads(dataset_file.read_text())) if dataset_file.is_file() else {}
    out = {names.get(key, key): float(value["Dice"]) for key, value in means.items()}
    out["mean"] = foreground
    return out


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return "nan" if math.isnan(value) else f"{value:.4f}"


def format_side_by_side(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A table per fold: one row per label (and ``mean``), one column per checkpoint.

    With more than one fold, a last table averages each cell over the folds that have it
    (NaN-aware, as nnU-Net averages cases).

    Args:
        results: fold name -> checkpoint -> label -> Dice.

    Returns:
        The text (no trailing newline).

    Examples:
        >>> print(format_side_by_side({"fold_0": {
        ...     "checkpoint_final": {"RV": 0.0, "mean": 0.5},
        ...     "checkpoint_best_RV": {"RV": 0.61, "mean": 0.55}}}))
        fold_0  checkpoint_final  checkpoint_best_RV
        RV                0.0000              0.6100
        mean              0.5000              0.5500
    """
    blocks = []
    tables = {k: dict(v) for k, v in results.items()}
    if len(tables) > 1:
        merged: dict[str, dict[str, list[float]]] = {}
        for per_checkpoint in tables.values():
            for checkpoint, dice in per_checkpoint.items():
                for label, value in dice.items():
                    merged.setdefault(checkpoint, {}).setdefault(label, []).append(value)
        tables[f"mean over {len(results)} folds"] = {
            c: {
                label: (
                    sum(f) / len(f) if (f := [v for v in values if not math.isnan(v)]) else math.nan
                )
                for label, values in per_label.items()
            }
            for c, per_label in merged.items()
        }
    for title, per_checkpoint in tables.items():
        checkpoints = list(per_checkpoint)
        labels: list[str] = []
        for dice in per_checkpoint.values():
            labels.extend(label for label in dice if label not in labels and label != "mean")
        labels.append("mean")
        rows = [[title, *checkpoints]]
        rows.extend(
            [label, *[_cell(per_checkpoint[c].get(label)) for c in checkpoints]] for label in labels
        )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        blocks.append(
            "\n".join(
                "  ".join(
                    cell.ljust(w) if i == 0 else cell.rjust(w)
                    for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                ).rstrip()
                for row in rows
            )
        )
    return "\n\n".join(blocks)
