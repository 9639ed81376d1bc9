"""``nnunet-ext export``: trained models, ensemble spec and postprocessing plan as one bundle.

The bundle is a zip in nnU-Net's pretrained-model layout that stock
``nnUNetv2_install_pretrained_model_from_zip`` installs: checkpoints without optimizer state,
trainer names rewritten to stock nnU-Net trainers, plus ``nnunet_ext_bundle/`` with the spec,
the plan and a manifest of every file's size and SHA-256. ``nnunet-ext predict --bundle`` runs
the whole recipe from it; ``nnunet-ext export --check`` verifies it. Importing this package does
not import torch (only exporting does, through :mod:`nnunet_ext.export.engine`).
"""

from nnunet_ext.export.api import DEFAULT_CHECKPOINT, ExportSummary, export_bundle
from nnunet_ext.io.bundle import BundleInfo, extract_bundle, verify_bundle

__all__ = [
    "DEFAULT_CHECKPOINT",
    "BundleInfo",
    "ExportSummary",
    "export_bundle",
    "extract_bundle",
    "verify_bundle",
]
