"""Weighted, streaming ensembling of nnU-Net probability folders.

Pure maths in :mod:`~nnunet_ext.ensemble.fusion`, folder I/O in :mod:`~nnunet_ext.ensemble.folders`,
the JSON spec in :mod:`~nnunet_ext.ensemble.spec`. Importing this package does not import torch.
"""

from nnunet_ext.ensemble.folders import (
    EnsemblePlan,
    EnsembleSummary,
    ensemble_folders,
    plan_ensemble,
    weight_matrix,
)
from nnunet_ext.ensemble.fusion import (
    FusionAccumulator,
    fuse_probabilities,
    normalize_weights,
    probabilities_to_labels,
)
from nnunet_ext.ensemble.spec import EnsembleSpec, MemberSpec

__all__ = [
    "EnsemblePlan",
    "EnsembleSpec",
    "EnsembleSummary",
    "FusionAccumulator",
    "MemberSpec",
    "ensemble_folders",
    "fuse_probabilities",
    "normalize_weights",
    "plan_ensemble",
    "probabilities_to_labels",
    "weight_matrix",
]
