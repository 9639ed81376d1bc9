"""Compare evaluations of the same cases: is version B better than A beyond the noise?

:func:`compare_evaluations` reads the files that ``nnunet-ext evaluate --json`` writes (through
``evaluate``'s reader, :func:`nnunet_ext.evaluate.load_evaluation`), checks they were evaluated
alike (:mod:`nnunet_ext.compare.inputs`) and returns a :class:`Comparison`: per label and metric,
and for the score, each version's mean, the difference from the first version with a bootstrap
interval over paired resamples of the cases (the package's one bootstrap,
:func:`nnunet_ext._stats.bootstrap_means`), the share of cases each wins and a verdict; with
three or more versions their ranks (:mod:`nnunet_ext.compare.stats`).
:func:`write_comparison` writes its JSON (:func:`load_comparison` reads it back) and its figure.
"""

from nnunet_ext.compare.api import compare_evaluations
from nnunet_ext.compare.report import format_comparison, summary_line, write_comparison
from nnunet_ext.compare.results import Comparison, Difference, Standing, load_comparison

__all__ = [
    "Comparison",
    "Difference",
    "Standing",
    "compare_evaluations",
    "format_comparison",
    "load_comparison",
    "summary_line",
    "write_comparison",
]
