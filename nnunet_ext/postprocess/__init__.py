"""Postprocess label maps: largest component, small objects, hole filling, component rules.

Array functions (:func:`keep_largest_component`, :func:`remove_small_components`,
:func:`fill_holes`, :func:`relabel_small_components`, :func:`gate_label_volume`,
:func:`keep_top_k_components`, :func:`drop_improbable_components`, ...), a JSON
:class:`PostprocessingPlan` (with :class:`ComponentStep` rules) with :func:`apply_plan` and
:func:`determine_plan`, and :func:`postprocess_folder` for nnU-Net prediction folders. Outputs are
always ``uint8`` with the input geometry. Importing this package loads numpy only.
"""

from nnunet_ext.postprocess.component_rules import (
    drop_improbable_components,
    gate_label_volume,
    keep_top_k_components,
    relabel_small_components,
)
from nnunet_ext.postprocess.components import (
    keep_largest_component,
    keep_largest_foreground_component,
    remove_small_components,
)
from nnunet_ext.postprocess.determine import determine_plan
from nnunet_ext.postprocess.folders import FolderResult, postprocess_file, postprocess_folder
from nnunet_ext.postprocess.holes import fill_holes
from nnunet_ext.postprocess.plan import PostprocessingPlan, apply_plan, load_plan, save_plan
from nnunet_ext.postprocess.steps import ComponentStep

__all__ = [
    "ComponentStep",
    "FolderResult",
    "PostprocessingPlan",
    "apply_plan",
    "determine_plan",
    "drop_improbable_components",
    "fill_holes",
    "gate_label_volume",
    "keep_largest_component",
    "keep_largest_foreground_component",
    "keep_top_k_components",
    "load_plan",
    "postprocess_file",
    "postprocess_folder",
    "relabel_small_components",
    "remove_small_components",
    "save_plan",
]
