"""``CustomEpochs`` and ``nnUNetTrainerCustomEpochs``: nnU-Net's default trainer plus epoch control.

Two real classes with distinct names (nnU-Net names result folders after the class, so an
alias would write into the other's folder). Use either with ``nnUNetv2_train ... -tr <name>``.
"""

from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ext.trainers.mixins import EpochControlMixin

__all__ = ["CustomEpochs", "nnUNetTrainerCustomEpochs"]


class CustomEpochs(EpochControlMixin, nnUNetTrainer):
    """nnUNetTrainer with epochs, iteration counts and early stopping from the environment."""


class nnUNetTrainerCustomEpochs(EpochControlMixin, nnUNetTrainer):
    """Same as :class:`CustomEpochs`, under nnU-Net's naming convention."""
