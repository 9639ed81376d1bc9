"""``nnunet-ext validate``: validate any checkpoint of a fold without touching ``validation/``.

nnU-Net's ``--val --val_best`` overwrites ``fold_k/validation``. Here each checkpoint gets its own
``fold_k/validation_<checkpoint stem>/`` written by nnU-Net's own ``perform_actual_validation``
(so it is an ordinary member for ``tune`` and ``ensemble``), and the per-label Dice of every
checkpoint is shown side by side. This package is torch-free; the nnU-Net part runs in
:mod:`nnunet_ext.validate.engine`.
"""

from nnunet_ext.validate.jobs import plan_validation, read_validation_dice

__all__ = ["plan_validation", "read_validation_dice"]
