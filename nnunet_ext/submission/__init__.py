"""Build and check challenge submission zips: flat, label files only, uint8, right geometry.

:func:`build_submission` writes a deterministic zip plus a manifest and report, and leaves no
zip behind on any problem; :func:`check_submission` runs the same checks on any zip, including
one made by hand. Importing this package loads numpy only.
"""

from nnunet_ext.submission.builder import build_submission
from nnunet_ext.submission.checker import SubmissionError, SubmissionReport, check_submission
from nnunet_ext.submission.manifest import report_text

__all__ = [
    "SubmissionError",
    "SubmissionReport",
    "build_submission",
    "check_submission",
    "report_text",
]
