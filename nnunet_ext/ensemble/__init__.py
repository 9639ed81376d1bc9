"""Weighted, streaming ensembling of nnU-Net probability folders.

Pure maths in :mod:`~nnunet_ext.ensemble.fusion`, folder I/O in :mod:`~nnunet_ext.ensemble.folders`,
the JSON spec in :mod:`~nnunet_ext.ensemble.spec`. Importing this package does not import torch.
"""

from nnunet_ext.ensemble.folders import (
    EnsemblePlan,
    EnsembleSummary,
    ensemble_folders,
    label_rules,
    plan_ensemble,
    weight_matrix,
)
from nnunet_ext.ensemble.fusion import (
    FusionAccumulator,
    LabelRules,
    apply_label_rules,
    fuse_probabilities,
    fuse_to_labels,
    normalize_weights,
    probabilities_to_labels,
)
from nnunet_ext.ensemble.spec import EnsembleSpec, MemberSpec, RuleSpec

__all__ = [
    "EnsemblePlan",
    "EnsembleSpec",
    "EnsembleSummary",
    "FusionAccumulator",
    "LabelRules",
    "MemberSpec",
    "RuleSpec",
    "apply_label_rules",
    "ensemble_folders",
    "fuse_probabilities",
    "fuse_to_labels",
    "label_rules",
    "normalize_weights",
    "plan_ensemble",
    "probabilities_to_labels",
    "weight_matrix",
]
