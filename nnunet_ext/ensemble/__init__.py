"""Weighted, streaming ensembling of nnU-Net probability folders.

Pure maths in :mod:`~nnunet_ext.ensemble.fusion` (weighted fusion, probabilities to labels) and
:mod:`~nnunet_ext.ensemble.rules` (per-label decision rules); the JSON spec in
:mod:`~nnunet_ext.ensemble.spec`, resolved against ``dataset.json``'s labels in
:mod:`~nnunet_ext.ensemble.channels`; validation of a folder ensemble in
:mod:`~nnunet_ext.ensemble.plan`, fusing and writing it in :mod:`~nnunet_ext.ensemble.folders`.
Importing this package does not import torch.
"""

from nnunet_ext.ensemble.folders import EnsembleSummary, ensemble_folders
from nnunet_ext.ensemble.fusion import fuse_probabilities, fuse_to_labels, probabilities_to_labels
from nnunet_ext.ensemble.rules import LabelRules, apply_label_rules
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
