"""Quality flags per case and label from an ensemble's own disagreement (``--qc``).

Pure measures in :mod:`~nnunet_ext.qc.measures`, the thresholds and the reasons in words in
:mod:`~nnunet_ext.qc.thresholds`, the ``qc.json`` / ``qc.csv`` format in
:mod:`~nnunet_ext.qc.report`, the per-case records and the end of a run in
:mod:`~nnunet_ext.qc.cases`, the slice PNG in :mod:`~nnunet_ext.qc.figures`, the HTML page in
:mod:`~nnunet_ext.qc.html` and the calibration on cross-validation cases in
:mod:`~nnunet_ext.qc.calibrate`. ``ensemble --qc`` and ``predict --qc`` use them.
"""

from nnunet_ext.qc.cases import QcOptions
from nnunet_ext.qc.measures import LabelMeasures, measure_case
from nnunet_ext.qc.report import QcReport, load_qc, load_qc_csv
from nnunet_ext.qc.thresholds import QcThresholds, label_reasons

__all__ = [
    "LabelMeasures",
    "QcOptions",
    "QcReport",
    "QcThresholds",
    "label_reasons",
    "load_qc",
    "load_qc_csv",
    "measure_case",
]
