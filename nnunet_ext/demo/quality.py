"""The demo's flagged test cases: what ``--qc`` says, printed beside the Dice table.

:func:`flagged_test_cases` reads the ``qc.json`` of a test-set ensemble run with ``--qc`` (for
example ``ensemble -i predictions/2d predictions/3d_fullres --spec tuning/ensemble_spec.json
--qc``) and returns the lines the summary prints: how many cases are flagged, then one line per
flagged case with its flagged labels and their first reason.
"""

from __future__ import annotations

import os

from nnunet_ext.qc import load_qc

__all__ = ["flagged_test_cases"]


def flagged_test_cases(qc_json: str | os.PathLike[str], *, limit: int = 12) -> str:
    """The QC verdict on the test cases, for the demo's summary.

    Args:
        qc_json: The ``qc.json`` of ``ensemble --qc`` or ``predict --qc`` on the test cases.
        limit: Flagged cases listed at most (riskiest first); the rest are counted.

    Returns:
        The lines, joined by newlines.

    Raises:
        FileNotFoundError, InputError: For a missing or malformed ``qc.json``.
    """
    report = load_qc(qc_json)
    flagged = report.flagged
    lines = [
        f"QC (the members' disagreement, no reference): {len(flagged)} of {len(report.cases)} "
        "test case(s) flagged"
    ]
    for case in flagged[:limit]:
        parts = [
            f"{label.name}: {label.reasons[0]}"
            + (f" (+{len(label.reasons) - 1} more)" if len(label.reasons) > 1 else "")
            for label in case.labels
            if label.flagged
        ]
        lines.append(f"  {case.case}  " + "; ".join(parts))
    if len(flagged) > limit:
        lines.append(f"  ... and {len(flagged) - limit} more (see {qc_json})")
    return "\n".join(lines)
