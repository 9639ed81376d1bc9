"""The torch side of ``nnunet-ext export``: stock trainer names and slim checkpoints.

A bundle must load where only stock nnU-Net is installed, so every checkpoint's
``trainer_name`` is rewritten to the nearest stock nnU-Net trainer in the class's MRO (the
first class defined in ``nnunetv2``): ``nnUNetTrainer`` for ``CustomEpochs`` and
``CustomEpochs_e250_p30``, ``nnUNetTrainer_250epochs_NoMirroring`` for our mixin on that variant.

The rule (:data:`INFERENCE_METHODS`): the rename is refused, naming the class and the method,
when a class between ours and the stock one defines a method that shapes the network or what
the predictor reads from the checkpoint. nnU-Net's predictor calls only
``build_network_architecture`` of the trainer class; ``initialize`` and
``set_deep_supervision_enabled`` decide which network the weights were trained in,
``configure_rotation_dummyDA_mirroring_and_inital_patch_size`` decides the test-time mirroring
axes and ``save_checkpoint`` what the checkpoint holds. nnunet_ext's own classes override none
of them (``EpochControlMixin`` overrides ``__init__``, ``load_checkpoint``, ``on_train_start``,
``on_epoch_end`` and ``run_training``: training only), so they always export.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnunet_ext.trainers.checkpoints import load_checkpoint

__all__ = [
    "INFERENCE_METHODS",
    "REMOVED_KEYS",
    "SlimCheckpoint",
    "find_trainer_class",
    "slim_checkpoint",
    "stock_trainer",
    "stock_trainer_name",
]

#: Methods whose override in one of our classes makes the stock rename unsafe (module doc).
INFERENCE_METHODS = (
    "build_network_architecture",
    "initialize",
    "set_deep_supervision_enabled",
    "configure_rotation_dummyDA_mirroring_and_inital_patch_size",
    "save_checkpoint",
)

#: Checkpoint keys that only resuming training uses; the export drops them.
REMOVED_KEYS = ("optimizer_state", "grad_scaler_state")


def _is_stock(cls: type) -> bool:
    return cls.__module__ == "nnunetv2" or cls.__module__.startswith("nnunetv2.")


def stock_trainer(cls: type) -> type:
    """The nearest stock nnU-Net trainer in ``cls``'s MRO, if the rename keeps inference.

    Args:
        cls: A trainer class (a subclass of ``nnUNetTrainer``).

    Returns:
        The first class of ``cls.__mro__`` defined in ``nnunetv2`` (``cls`` itself if stock).

    Raises:
        ValueError: If a class before it defines one of :data:`INFERENCE_METHODS` (the message
            names the class and the method), or if no stock trainer is in the MRO.
    """
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    for klass in cls.__mro__:
        if _is_stock(klass) and isinstance(klass, type) and issubclass(klass, nnUNetTrainer):
            return klass
        changed = [name for name in INFERENCE_METHODS if name in vars(klass)]
        if changed:
            raise ValueError(
                f"trainer {cls.__name__} cannot be exported for stock nnU-Net: its class "
                f"{klass.__module__}.{klass.__qualname__} overrides {', '.join(changed)}, which "
                "changes inference (the network or what the predictor reads). Only trainers "
                "that change training alone can be renamed to a stock trainer."
            )
    raise ValueError(
        f"trainer {cls.__name__} has no stock nnU-Net trainer in its MRO "
        f"({', '.join(k.__name__ for k in cls.__mro__)}); it cannot run on stock nnU-Net."
    )


def find_trainer_class(name: str) -> type:
    """Look ``name`` up exactly as ``nnUNetv2_predict`` does (its output is silenced).

    Raises:
        ValueError: If nnU-Net cannot find the trainer.
    """
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        # the lookup imports nnU-Net's whole trainer tree: silence its chatter and the
        # deprecation warnings of those imports (not ours to fix)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            cls: type = recursive_find_trainer_class_by_name(name)
    except (RuntimeError, ImportError, AssertionError) as err:
        raise ValueError(
            f"trainer {name!r} must be one that nnU-Net finds in this environment; got "
            f"{type(err).__name__}: {str(err)[:200]}. Run 'nnunet-ext doctor' to check the "
            "trainer lookup."
        ) from err
    return cls


def stock_trainer_name(name: str) -> str:
    """The stock trainer name a checkpoint of trainer ``name`` is exported under.

    Raises:
        ValueError: As :func:`find_trainer_class` and :func:`stock_trainer`.
    """
    return stock_trainer(find_trainer_class(name)).__name__


class SlimCheckpoint:
    """A checkpoint rewritten for export.

    Attributes:
        data: The ``torch.save`` bytes (deterministic: same input, same bytes).
        original_size: Size of the source file in bytes.
        removed_bytes: Per removed key, the size its ``torch.save`` alone takes.
    """

    def __init__(self, data: bytes, original_size: int, removed_bytes: dict[str, int]) -> None:
        self.data = data
        self.original_size = original_size
        self.removed_bytes = removed_bytes


def _saved_size(value: Any) -> int:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.tell()


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays as Python numbers and lists, dates as text.

    What stock ``torch.load(weights_only=True)`` reads without extra allowed globals: tensors,
    ``torch.device``, builtin containers and numbers.
    """
    if isinstance(value, torch.Tensor | torch.device):
        return value
    if isinstance(value, dict):
        plain = {k: _plain(v) for k, v in value.items()}
        return (
            collections.OrderedDict(plain) if isinstance(value, collections.OrderedDict) else plain
        )
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta):
        return str(value)
    return value


def slim_checkpoint(
    path: str | os.PathLike[str],
    *,
    expected_trainer: str,
    trainer_name: str,
    allow_unsafe: bool = False,
) -> SlimCheckpoint:
    """Read a checkpoint, drop :data:`REMOVED_KEYS`, set ``trainer_name``, keep only weights.

    The result loads with stock ``torch.load(weights_only=True)`` (checked here): NumPy values
    of the training log become Python numbers (:func:`_plain`).

    Args:
        path: ``fold_k/checkpoint_*.pth``.
        expected_trainer: The trainer the folder is named after; the checkpoint must agree.
        trainer_name: The stock name to write.
        allow_unsafe: Read a checkpoint that fails the checkpoint check (runs code from it).

    Raises:
        ValueError: If the file is not an nnU-Net checkpoint or names another trainer.
    """
    file = Path(path)
    checkpoint = load_checkpoint(file, allow_unsafe=allow_unsafe)
    if "network_weights" not in checkpoint:
        raise ValueError(f"{file} must be an nnU-Net checkpoint with 'network_weights'.")
    found = checkpoint.get("trainer_name")
    if found != expected_trainer:
        raise ValueError(
            f"{file}: trainer_name must be {expected_trainer!r} (the folder's trainer); got "
            f"{found!r}. The folder was renamed or holds another model's checkpoint."
        )
    removed = {key: _saved_size(checkpoint.pop(key)) for key in REMOVED_KEYS if key in checkpoint}
    checkpoint["trainer_name"] = trainer_name
    buffer = io.BytesIO()
    torch.save(_plain(checkpoint), buffer)
    data = buffer.getvalue()
    torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # stock, no extra globals
    return SlimCheckpoint(data, file.stat().st_size, removed)
