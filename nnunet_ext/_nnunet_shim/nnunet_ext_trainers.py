"""Shim that nnU-Net's ``nnUNet_extTrainer`` lookup imports (as a top-level module).

It only re-exports nnunet_ext's trainers by absolute import, so nnU-Net gets the canonical
classes (``nnunet_ext.trainers.custom_epochs.CustomEpochs``), which stay importable and
picklable after the lookup evicts this shim from ``sys.modules``. Names with a settings suffix
(``CustomEpochs_e250_p30``) are resolved on attribute access.
"""

from typing import Any

from nnunet_ext.trainers.custom_epochs import CustomEpochs, nnUNetTrainerCustomEpochs

__all__ = ["CustomEpochs", "nnUNetTrainerCustomEpochs"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from nnunet_ext.trainers.named import named_trainer

    return named_trainer(name)
