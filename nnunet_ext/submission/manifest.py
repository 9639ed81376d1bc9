"""The manifest (JSON) and the short text report written next to a submission zip."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnunet_ext import __version__
from nnunet_ext.submission.checker import SubmissionReport

__all__ = ["MANIFEST_SCHEMA_VERSION", "absent_label_warnings", "manifest_dict", "report_text"]

#: Version of the manifest's JSON layout.
MANIFEST_SCHEMA_VERSION = 1


def absent_label_warnings(report: SubmissionReport, *, fraction: float = 0.5) -> list[str]:
    """Warn for each allowed foreground label absent in at least ``fraction`` of the cases."""
    if report.label_ids is None or not report.cases:
        return []
    warnings = []
    total = len(report.cases)
    for label in report.label_ids:
        if label == 0:
            continue
        absent = [c.case for c in report.cases if c.label_voxels.get(label, 0) == 0]
        if absent and len(absent) >= fraction * total:
            shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
            warnings.append(f"label {label} is absent in {len(absent)} of {total} cases ({shown})")
    return warnings


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_dict(
    report: SubmissionReport,
    *,
    zip_path: str | os.PathLike[str],
    label_map: Mapping[int, int] | None = None,
    name_template: str = "{case}",
) -> dict[str, Any]:
    """Return the manifest: zip digest, and per file its case, sha256, size and label voxels."""
    path = Path(zip_path)
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "zip": path.name,
        "zip_sha256": _sha256(path),
        "num_cases": len(report.cases),
        "label_ids": list(report.label_ids) if report.label_ids is not None else None,
        "label_map": {str(k): v for k, v in (label_map or {}).items()},
        "name_template": name_template,
        "files": [
            {
                "name": c.name,
                "case": c.case,
                "sha256": c.sha256,
                "size_bytes": c.size_bytes,
                "label_voxels": {str(k): v for k, v in sorted(c.label_voxels.items())},
            }
            for c in report.cases
        ],
        "warnings": list(report.warnings),
        "nnunet_ext_version": __version__,
    }


def report_text(report: SubmissionReport) -> str:
    """Return a short human-readable report (cases, per-label presence, warnings)."""
    lines = [f"{report.zip_path.name}: {len(report.cases)} case(s), all checks passed"]
    labels = sorted({k for c in report.cases for k in c.label_voxels} | set(report.label_ids or ()))
    for label in labels:
        if label == 0:
            continue
        present = sum(1 for c in report.cases if c.label_voxels.get(label, 0) > 0)
        voxels = sum(c.label_voxels.get(label, 0) for c in report.cases)
        lines.append(
            f"  label {label}: present in {present}/{len(report.cases)} cases, {voxels} voxels"
        )
    lines.extend(f"WARNING: {w}" for w in report.warnings)
    return "\n".join(lines) + "\n"
