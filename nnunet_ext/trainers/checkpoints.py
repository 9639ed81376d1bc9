"""The torch side of reading checkpoints: loads that cannot run code from the file.

Every checkpoint is checked first by :func:`nnunet_ext.io.checkpoints.read_checkpoint`
(torch-free, nothing called) and then loaded with ``torch.load(weights_only=True)`` under
``torch.serialization.safe_globals`` of the same
:data:`~nnunet_ext.io.checkpoints.CHECKPOINT_GLOBALS`, so the check and the load cannot disagree.
``allow_unsafe=True`` is the one opt-out: ``weights_only=False``, which runs code from the file.

:func:`initialize_predictor` is nnU-Net's ``nnUNetPredictor.initialize_from_trained_model_folder``
with these loads (nnU-Net's own uses ``weights_only=False``): the same network, built by the
trainer class's ``build_network_architecture`` from the folder's plans and dataset.json, and the
same ``manual_initialization``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nnunet_ext.io import load_json_object
from nnunet_ext.io.checkpoints import CHECKPOINT_GLOBALS, read_checkpoint

__all__ = ["initialize_predictor", "load_checkpoint", "safe_globals"]


def safe_globals() -> list[Any]:
    """:data:`~nnunet_ext.io.checkpoints.CHECKPOINT_GLOBALS` as objects, for ``safe_globals``.

    Each comes as ``(object, "module.name")``, so that a name spelled in the pickle under an
    older module path (``numpy.core.multiarray.scalar`` for NumPy 2's ``numpy._core``) matches.
    """
    resolved: list[Any] = []
    for full in CHECKPOINT_GLOBALS:
        module, _, name = full.rpartition(".")
        with warnings.catch_warnings():  # numpy.core is deprecated under NumPy 2
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                obj = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue  # this NumPy spells it the other way; that spelling is in the list too
        resolved.append((obj, full))
    return resolved


def load_checkpoint(path: str | os.PathLike[str], *, allow_unsafe: bool = False) -> dict[str, Any]:
    """Check a checkpoint (torch-free), then load it onto the CPU with ``weights_only=True``.

    Args:
        path: The ``.pth`` file.
        allow_unsafe: Load with ``weights_only=False`` (runs code from the file).

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError, InputError: As :func:`nnunet_ext.io.checkpoints.read_checkpoint`.
        ValueError: If torch cannot load what the check accepted (one line naming the file).
    """
    file = Path(path)
    read_checkpoint(file, allow_unsafe=allow_unsafe)
    try:
        if allow_unsafe:
            data = torch.load(file, map_location=torch.device("cpu"), weights_only=False)
        else:
            with torch.serialization.safe_globals(safe_globals()):
                data = torch.load(file, map_location=torch.device("cpu"), weights_only=True)
    except Exception as err:  # torch raises anything from a file it cannot read
        raise ValueError(f"{file} must be a checkpoint torch can load; got {_cause(err)}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{file} must hold an nnU-Net checkpoint dict; got {type(data).__name__}.")
    return data


def _cause(err: BaseException) -> str:
    """The informative line of torch's error (its weights-only errors open with boilerplate)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for marker in ("Unsupported global", "Can only build", "WeightsUnpickler error:"):
        for line in lines:
            if marker in line:
                return line[:200]
    return (lines or [type(err).__name__])[0][:200]


def _load_state(network: Any, weights: Any, file: Path, model_dir: Path) -> None:
    try:
        network.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ValueError(
            f"{file} must hold weights of the network that {model_dir / 'plans.json'} describes; "
            f"got {first}. The checkpoint belongs to another model: copy the right one."
        ) from err


def initialize_predictor(
    predictor: Any,
    model_dir: str | os.PathLike[str],
    folds: Sequence[str],
    checkpoint_name: str,
    *,
    allow_unsafe: bool = False,
) -> None:
    """``predictor.initialize_from_trained_model_folder`` with checked, weights-only loads.

    Args:
        predictor: An ``nnUNetPredictor``.
        model_dir: ``TRAINER__PLANS__CONFIG`` folder (validated by the caller).
        folds: Fold names (``"0"``, ``"all"``).
        checkpoint_name: Checkpoint file in each fold folder.
        allow_unsafe: Load with ``weights_only=False`` (runs code from the files).

    Raises:
        ValueError, InputError: Naming the checkpoint, when a file fails its check or its
            weights do not fit the folder's network.
    """
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = Path(model_dir)
    dataset_json = load_json_object(folder / "dataset.json")
    plans_manager = PlansManager(load_json_object(folder / "plans.json"))
    files = [folder / f"fold_{fold}" / checkpoint_name for fold in folds]
    checkpoints = [load_checkpoint(file, allow_unsafe=allow_unsafe) for file in files]
    first = checkpoints[0]
    configuration_manager = plans_manager.get_configuration(first["init_args"]["configuration"])
    num_inputs = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
    num_outputs = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    with contextlib.redirect_stdout(io.StringIO()):  # the lookup lists every module it imports
        trainer_class = recursive_find_trainer_class_by_name(first["trainer_name"])
    if "plans_manager" in inspect.signature(trainer_class.build_network_architecture).parameters:
        network = trainer_class.build_network_architecture(
            plans_manager, configuration_manager, num_inputs, num_outputs,
            enable_deep_supervision=False,
        )  # fmt: skip
    else:  # nnU-Net's older signature (it warns and still supports it)
        network = trainer_class.build_network_architecture(
            configuration_manager.network_arch_class_name,
            configuration_manager.network_arch_init_kwargs,
            configuration_manager.network_arch_init_kwargs_req_import,
            num_inputs, num_outputs, enable_deep_supervision=False,
        )  # fmt: skip
    parameters = [c["network_weights"] for c in checkpoints]
    for file, weights in reversed(list(zip(files, parameters, strict=True))):
        _load_state(network, weights, file, folder)  # every fold fits; the first stays loaded
    predictor.manual_initialization(
        network,
        plans_manager,
        configuration_manager,
        parameters,
        dataset_json,
        first["trainer_name"],
        first.get("inference_allowed_mirroring_axes"),
    )
