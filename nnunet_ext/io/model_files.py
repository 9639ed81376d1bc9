"""The files of a trained model folder (``dataset.json`` and ``plans.json``), read and checked.

``$nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG`` holds them as ``nnUNetv2_train`` wrote them;
nnU-Net's predictor and trainer read both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnunet_ext.io.dataset_json import LabelSpec
from nnunet_ext.io.json_files import load_json_object
from nnunet_ext.io.plans import configuration_architecture, configuration_patch_size, load_plans
from nnunet_ext.io.schema import invalid_key

__all__ = ["load_model_files", "require_model_files"]


def require_model_files(model_dir: str | os.PathLike[str], where: str) -> None:
    """Check that ``model_dir`` holds the dataset.json and plans.json nnUNetv2_train writes.

    ``where`` names the parameter (or spec member) that gave the folder, e.g. ``"fold_dirs"``.

    Raises:
        FileNotFoundError: Naming the missing file and what a trained model folder holds.
    """
    for name in ("dataset.json", "plans.json"):
        path = Path(model_dir) / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{where}: {path} not found; a trained model folder "
                "($nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG) holds dataset.json and "
                "plans.json (written by nnUNetv2_train)."
            )


def load_model_files(
    model_dir: str | os.PathLike[str], where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and check the ``dataset.json`` and ``plans.json`` of a trained model folder.

    Checked, beyond :func:`require_model_files`: ``dataset.json`` as
    :meth:`LabelSpec.from_dataset_json` (labels, ``file_ending``) with a non-empty
    ``channel_names`` object, and ``plans.json`` as :func:`load_plans` with its
    ``configurations`` (an object) and ``dataset_name`` (a string), which nnU-Net's predictor and
    trainer read.

    Args:
        model_dir: ``$nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG``.
        where: The parameter (or spec member) that gave the folder, for a missing file.

    Returns:
        ``(dataset_json, plans)``.

    Raises:
        FileNotFoundError: If a file is missing.
        InputError: For a damaged file or a missing or malformed key, naming file and key.
    """
    require_model_files(model_dir, where)
    folder = Path(model_dir)
    dataset_file = folder / "dataset.json"
    dataset_json = load_json_object(dataset_file)
    LabelSpec.from_dataset_json(dataset_json, source=str(dataset_file))
    fix = "Copy it again from the model folder nnUNetv2_train wrote."
    key = "channel_names" if "channel_names" in dataset_json else "modality"
    channels = dataset_json.get(key)
    if not isinstance(channels, Mapping) or not channels:
        raise invalid_key(
            dataset_file, dataset_json, "channel_names", "an object of channel names", fix=fix
        )
    plans_file = folder / "plans.json"
    plans = load_plans(plans_file)
    for name, expected, kind in (
        ("configurations", "an object of configurations", Mapping),
        ("dataset_name", "a string", str),
    ):
        if not isinstance(plans.get(name), kind):
            raise invalid_key(plans_file, plans, name, expected, fix=fix)
    parts = folder.name.split("__")
    if len(parts) == 3 and parts[2] in plans["configurations"]:
        configuration_patch_size(plans, parts[2], plans_file)  # the folder's configuration
        configuration_architecture(plans, parts[2], plans_file)
    return dataset_json, plans
