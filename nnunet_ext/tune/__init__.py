"""Tune per-label ensemble weights and rules on cross-validation, for :mod:`nnunet_ext.ensemble`.

:func:`tune_weights` reads the CV folders (:func:`load_cv_data`) and returns a
:class:`TuneResult`; :func:`write_outputs` writes its spec, a JSON report (:func:`report_dict`)
and a PNG figure; :func:`format_table` is the table the command prints;
:func:`determine_postprocessing` chooses the postprocessing plan on the CV result fused with the
spec (``--postprocess``). Region-based (sigmoid) models: :func:`tune_regions` returns a
:class:`RegionTuneResult` (per-region weights and thresholds, :mod:`nnunet_ext.tune.region_gate`)
and :func:`write_region_outputs` writes its spec, report and figure.

The pure-numpy parts are modules of their own: the compact form of the CV data
(:mod:`nnunet_ext.tune.compact`), scoring weights on it (:mod:`nnunet_ext.tune.scoring`), the
weight search (:mod:`nnunet_ext.tune.search`), the held-out re-runs
(:mod:`nnunet_ext.tune.holdout`), the held-out statistics they share
(:mod:`nnunet_ext.tune.judge`), the held-out gate of the weights (:mod:`nnunet_ext.tune.gate`),
and the per-label rules (:mod:`nnunet_ext.tune.rules`) with their candidates
(:mod:`nnunet_ext.tune.candidates`). :class:`Procedure` names the procedure's optional parts
(for the ablation of ``benchmarks/bench_tune_draws.py``).
"""

from nnunet_ext.tune.api import TuneResult, tune_weights
from nnunet_ext.tune.postprocessing import determine_postprocessing
from nnunet_ext.tune.procedure import Procedure
from nnunet_ext.tune.reading import load_cv_data
from nnunet_ext.tune.region_api import RegionTuneResult, tune_regions
from nnunet_ext.tune.region_report import write_region_outputs
from nnunet_ext.tune.report import format_table, report_dict, write_outputs

__all__ = [
    "Procedure",
    "RegionTuneResult",
    "TuneResult",
    "determine_postprocessing",
    "format_table",
    "load_cv_data",
    "report_dict",
    "tune_regions",
    "tune_weights",
    "write_outputs",
    "write_region_outputs",
]
