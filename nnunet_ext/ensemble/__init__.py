"""Weighted, streaming ensembling of nnU-Net probability folders.

Pure maths in :mod:`~nnunet_ext.ensemble.fusion`, folder I/O in :mod:`~nnunet_ext.ensemble.folders`,
the JSON spec in :mod:`~nnunet_ext.ensemble.spec`. Importing this package does not import torch.
"""

from nnunet_ext.ensemble.folders import EnsembleSummary, ensemble_folders
from nnunet_ext.ensemble.fusion import (
    LabelRules,
    apply_label_rules,
    fuse_probabilities,
    fuse_to_labels,
    probabilities_to_labels,
)
from nnunet_ext.ensemble.spec import EnsembleSpec

__all__ = [
    "EnsembleSpec",
    "EnsembleSummary",
    "LabelRules",
    "apply_label_rules",
    "ensemble_folders",
    "fuse_probabilities",
    "fuse_to_labels",
    "probabilities_to_labels",
]
