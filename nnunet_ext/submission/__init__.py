"""Build and check challenge submission zips: flat, label files only, uint8, right geometry.

:func:`build_submission` writes a deterministic zip plus a manifest and report, and leaves no
zip behind on any problem; :func:`check_submission` runs the same checks on any zip, including
one made by hand. Importing this package loads numpy only.
"""

from nnunet_ext.submission.builder import build_submission, remap_labels, write_deterministic_zip
from nnunet_ext.submission.checker import (
    CaseSummary,
    SubmissionError,
    SubmissionReport,
    check_submission,
    expected_cases,
)
from nnunet_ext.submission.manifest import manifest_dict, report_text
from nnunet_ext.submission.preview import render_preview

__all__ = [
    "CaseSummary",
    "SubmissionError",
    "SubmissionReport",
    "build_submission",
    "check_submission",
    "expected_cases",
    "manifest_dict",
    "remap_labels",
    "render_preview",
    "report_text",
    "write_deterministic_zip",
]
