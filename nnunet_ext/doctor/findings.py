"""What the doctor reports: one :class:`Finding` per check result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["JUNK_NAMES", "Finding", "Severity", "format_finding", "is_junk"]

Severity = Literal["ok", "warning", "error"]

#: Exact file names that are junk copied along from macOS / Windows.
JUNK_NAMES = frozenset({".DS_Store"})


def is_junk(name: str) -> bool:
    """Tell whether a file name is OS junk that ``--fix`` may delete.

    Only macOS AppleDouble files (``._*``) and ``.DS_Store``; never a data file.

    Examples:
        >>> [is_junk(n) for n in ["._case_0000.nii.gz", ".DS_Store", "case.npz", ".tmp"]]
        [True, True, False, False]
    """
    return name.startswith("._") or name in JUNK_NAMES


@dataclass(frozen=True)
class Finding:
    """One result of a check.

    Attributes:
        severity: ``"ok"`` (a passed environment check), ``"warning"`` or ``"error"``.
        check: Short category: ``env``, ``trainers``, ``torch``, ``junk``, ``unreadable``,
            ``labels``, ``pairing``, ``channels``, ``dataset``.
        message: What was found.
        path: The file or folder concerned, if any.
        fix: What to do about it.
    """

    severity: Severity
    check: str
    message: str
    path: str | None = None
    fix: str | None = None

    @property
    def is_problem(self) -> bool:
        """Whether this finding makes the doctor exit non-zero."""
        return self.severity == "error"

    def to_dict(self) -> dict[str, str | None]:
        """Return the JSON form."""
        return {
            "severity": self.severity,
            "check": self.check,
            "message": self.message,
            "path": self.path,
            "fix": self.fix,
        }


def format_finding(finding: Finding) -> str:
    """Render one finding as a line: ``ERROR [check] path: message. Fix: ...``.

    Examples:
        >>> format_finding(Finding("error", "junk", "AppleDouble file", "/d/._a", "delete it"))
        'ERROR   [junk] /d/._a: AppleDouble file. Fix: delete it'
    """
    label = {"ok": "ok", "warning": "WARNING", "error": "ERROR"}[finding.severity]
    where = f"{finding.path}: " if finding.path else ""
    fix = f". Fix: {finding.fix}" if finding.fix else ""
    return f"{label:<7} [{finding.check}] {where}{finding.message.rstrip('.')}{fix}"
