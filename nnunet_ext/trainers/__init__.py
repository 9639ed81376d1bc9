"""nnU-Net trainers with epochs control and early stopping, and the torch side of checkpoints.

Torch is imported only here and in the ``<feature>/engine.py`` modules (predict, export,
validate), lazily.

``nnUNetv2_train D C F -tr CustomEpochs`` finds these classes with no set-up: installing
nnunet_ext adds its shim folder to ``nnUNet_extTrainer`` at interpreter start (a ``.pth`` file).
Pure parts (:mod:`~nnunet_ext.trainers.settings`, :mod:`~nnunet_ext.trainers.early_stopping`,
:mod:`~nnunet_ext.trainers.cooldown`, :mod:`~nnunet_ext.trainers.label_tracking`,
:mod:`~nnunet_ext.trainers.record`) import without torch; the classes are loaded on first access.
:mod:`~nnunet_ext.trainers.checkpoints` loads checkpoints for every engine, checked first.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CustomEpochs", "EpochControlMixin", "named_trainer", "nnUNetTrainerCustomEpochs"]

_LAZY = {
    "CustomEpochs": "nnunet_ext.trainers.custom_epochs",
    "nnUNetTrainerCustomEpochs": "nnunet_ext.trainers.custom_epochs",
    "EpochControlMixin": "nnunet_ext.trainers.mixins",
    "named_trainer": "nnunet_ext.trainers.named",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
