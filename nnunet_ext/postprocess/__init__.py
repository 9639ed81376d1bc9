"""Postprocess label maps: largest component, small-object removal, background-only hole filling.

Array functions (:func:`keep_largest_component`, :func:`remove_small_components`,
:func:`fill_holes`, ...), a JSON :class:`PostprocessingPlan` with :func:`apply_plan` and
:func:`determine_plan`, and :func:`postprocess_folder` for nnU-Net prediction folders. Outputs are
always ``uint8`` with the input geometry. Importing this package loads numpy only.
"""

from nnunet_ext.postprocess.components import (
    keep_largest_component,
    keep_largest_foreground_component,
    remove_small_components,
)
from nnunet_ext.postprocess.determine import determine_plan
from nnunet_ext.postprocess.folders import FolderResult, postprocess_folder
from nnunet_ext.postprocess.holes import fill_holes
from nnunet_ext.postprocess.plan import PostprocessingPlan, apply_plan, load_plan, save_plan

__all__ = [
    "FolderResult",
    "PostprocessingPlan",
    "apply_plan",
    "determine_plan",
    "fill_holes",
    "keep_largest_component",
    "keep_largest_foreground_component",
    "load_plan",
    "postprocess_folder",
    "remove_small_components",
    "save_plan",
]
