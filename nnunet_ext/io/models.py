"""What a trained model folder is, and whether a checkpoint belongs to it (torch-free).

A trained model folder is ``$nnUNet_results/DatasetX/TRAINER__PLANS__CONFIGURATION`` with
``dataset.json``, ``plans.json`` and ``fold_k/checkpoint_*.pth``. nnU-Net's predictor builds the
network from the folder's name (the trainer class), ``plans.json`` (the configuration's
``architecture``) and ``dataset.json`` (input channels, output labels), and then loads each
checkpoint's weights into it: :func:`check_checkpoint_belongs` refuses a checkpoint trained for
another folder before any network is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnunet_ext.io.checkpoints import Checkpoint
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.nnunet_files import configuration_entry

__all__ = ["check_checkpoint_belongs"]


def _canonical(value: Any) -> str:
    """JSON text of a plans or dataset.json part (tuples as lists, keys sorted) for comparing."""
    return json.dumps(value, sort_keys=True, default=str)


def check_checkpoint_belongs(
    checkpoint: Checkpoint,
    model_dir: str | os.PathLike[str],
    *,
    plans: Mapping[str, Any],
    dataset_json: Mapping[str, Any],
) -> None:
    """Check that a checkpoint was trained for its model folder, before any network loads.

    The folder ``TRAINER__PLANS__CONFIGURATION`` and its ``plans.json`` and ``dataset.json``
    decide the network nnU-Net's predictor builds; the checkpoint's ``trainer_name``,
    ``init_args.configuration`` and, where stored, the ``architecture`` and ``patch_size`` of
    that configuration in ``init_args.plans`` and the labels and channels of
    ``init_args.dataset_json`` must agree with them (a 2d checkpoint copied into a 3d_fullres
    folder, a checkpoint of other plans, or an edited ``plans.json`` is refused).

    Args:
        checkpoint: As read by :func:`read_checkpoint`.
        model_dir: The model folder the checkpoint is in (``fold_k`` above it).
        plans: The folder's ``plans.json`` (validated).
        dataset_json: The folder's ``dataset.json`` (validated).

    Raises:
        InputError: Naming the checkpoint, the folder and what differs.
    """
    folder = Path(model_dir)
    parts = folder.name.split("__")
    trainer, configuration = (parts[0], parts[2]) if len(parts) == 3 else ("", "")
    fix = (
        f"The checkpoint belongs to another model; copy the checkpoint {folder.name} was "
        "trained with, or put this one in its own model folder."
    )
    if checkpoint.trainer_name != trainer:
        raise InputError(
            checkpoint.source,
            f"{trainer!r}, the trainer of its folder {folder}",
            repr(checkpoint.trainer_name),
            key="trainer_name",
            fix=fix,
        )
    if checkpoint.configuration != configuration:
        raise InputError(
            checkpoint.source,
            f"{configuration!r}, the configuration of its folder {folder}",
            repr(checkpoint.configuration),
            key="init_args.configuration",
            fix=fix,
        )
    for key, theirs, ours in _differences(checkpoint, configuration, plans, dataset_json):
        file = folder / ("plans.json" if key.startswith("plans") else "dataset.json")
        raise InputError(
            checkpoint.source,
            f"{ours}, as in {file}",
            theirs,
            key=f"init_args.{key}",
            fix=fix,
        )


def _differences(
    checkpoint: Checkpoint,
    configuration: str,
    plans: Mapping[str, Any],
    dataset_json: Mapping[str, Any],
) -> list[tuple[str, str, str]]:
    """``(key path, checkpoint's value, folder's value)`` for each network part that differs."""
    out: list[tuple[str, str, str]] = []
    stored_plans = checkpoint.init_args.get("plans")
    if isinstance(stored_plans, Mapping):
        for key in ("architecture", "patch_size"):
            try:
                _, theirs = configuration_entry(stored_plans, configuration, key, "init_args.plans")
            except InputError:
                return [(f"plans.configurations.{configuration}", "nothing", "an object")]
            _, ours = configuration_entry(plans, configuration, key, "plans.json")
            where = f"plans.configurations.{configuration}.{key}"
            out += _first_difference(theirs.get(key), ours.get(key), where)
    stored_dataset = checkpoint.init_args.get("dataset_json")
    if isinstance(stored_dataset, Mapping):
        for key in ("labels", "regions_class_order", "channel_names", "modality"):
            out += _first_difference(
                stored_dataset.get(key), dataset_json.get(key), f"dataset_json.{key}"
            )
    return out


def _first_difference(theirs: Any, ours: Any, where: str) -> list[tuple[str, str, str]]:
    """The first key path at which two JSON-like values differ, with both values (or none)."""
    if _canonical(theirs) == _canonical(ours):
        return []
    if isinstance(theirs, Mapping) and isinstance(ours, Mapping):
        for key in sorted(set(theirs) | set(ours), key=str):
            found = _first_difference(theirs.get(key), ours.get(key), f"{where}.{key}")
            if found:
                return found
    if isinstance(theirs, (list, tuple)) and isinstance(ours, (list, tuple)):
        if len(theirs) == len(ours):
            for index, (a, b) in enumerate(zip(theirs, ours, strict=True)):
                found = _first_difference(a, b, f"{where}[{index}]")
                if found:
                    return found
    return [(where, _text(theirs), _text(ours))]


def _text(value: Any) -> str:
    text = "nothing" if value is None else _canonical(value)
    return text if len(text) <= 60 else text[:57] + "..."
