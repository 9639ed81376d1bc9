"""Tune per-label ensemble weights on cross-validation, for :mod:`nnunet_ext.ensemble`.

The search maths is in :mod:`nnunet_ext.tune.search` (pure numpy); :func:`tune_weights` reads
the CV folders; :func:`write_outputs` writes the spec, a JSON report and a PNG figure;
:func:`determine_postprocessing` chooses the postprocessing plan on the CV result fused with the
spec (``--postprocess``).
"""

from nnunet_ext.tune.api import TuneResult, load_cv_data, overfit_warning, tune_weights
from nnunet_ext.tune.postprocessing import determine_postprocessing
from nnunet_ext.tune.report import format_table, report_dict, write_outputs
from nnunet_ext.tune.search import (
    CompactCVData,
    SearchResult,
    compact_case,
    cross_validated_gain,
    merge_cases,
    score_weights,
    search_weights,
    search_with_holdout,
    simplex_grid,
)

__all__ = [
    "CompactCVData",
    "SearchResult",
    "TuneResult",
    "compact_case",
    "cross_validated_gain",
    "determine_postprocessing",
    "format_table",
    "load_cv_data",
    "merge_cases",
    "overfit_warning",
    "report_dict",
    "score_weights",
    "search_weights",
    "search_with_holdout",
    "simplex_grid",
    "tune_weights",
    "write_outputs",
]
