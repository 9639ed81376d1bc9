"""``submission check --qc qc.csv``: the cases the ensemble's own QC flagged, before upload.

The check itself passes or fails on the zip; the QC table adds a warning per flagged case of the
submission (its labels and reasons) and one for the submitted cases the table does not cover.
With ``strict_qc``, flagged cases are an error instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from nnunet_ext.qc.report import load_qc_csv

__all__ = ["qc_warnings"]


def _list_some(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def qc_warnings(
    qc_csv: str | os.PathLike[str], case_ids: Sequence[str], *, strict_qc: bool = False
) -> list[str]:
    """The warnings of ``qc.csv`` for the submitted ``case_ids``.

    Args:
        qc_csv: The ``qc.csv`` of ``ensemble --qc`` or ``predict --qc``.
        case_ids: The cases of the submission.
        strict_qc: Raise instead of warning when a submitted case is flagged.

    Returns:
        One line per flagged case (``QC flags case: label: reasons``), then one for the
        submitted cases the table lacks, if any.

    Raises:
        FileNotFoundError: If ``qc_csv`` does not exist.
        InputError: If it is not a ``qc.csv``.
        ValueError: With ``strict_qc``, if a submitted case is flagged.
    """
    table = load_qc_csv(qc_csv)
    flagged = [case for case in case_ids if table.get(case)]
    if strict_qc and flagged:
        raise ValueError(
            f"{qc_csv}: submitted cases must not be flagged by the QC with strict_qc=True; got "
            f"{len(flagged)} flagged: {_list_some(flagged)}. Look at them (qc.json, the QC "
            "report page), then fix or accept them and check without strict_qc=True."
        )
    lines = [
        f"QC flags {case}: " + "; ".join(f"{name}: {reasons}" for name, reasons in table[case])
        for case in flagged
    ]
    missing = [case for case in case_ids if case not in table]
    if missing:
        lines.append(
            f"QC table {qc_csv} has no row for {len(missing)} submitted case(s): "
            f"{_list_some(missing)}; they were not quality-checked."
        )
    return lines
