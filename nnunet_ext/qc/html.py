"""``--qc-report``: one self-contained HTML page of the QC (images inline, no network).

The cases come riskiest first; each flagged case shows its reasons, the members' volumes and
Dice per label and its slice PNG (base64 ``data:`` URI). The page loads nothing: no script, no
style sheet, no font from elsewhere, so it opens from a laptop, a mail or a cluster's file share.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping
from pathlib import Path

from nnunet_ext.io import atomic_path
from nnunet_ext.qc.report import CaseQuality, QcReport

__all__ = ["render_html", "write_html_report"]

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em 0; }
th, td { border: 1px solid #bbb; padding: 2px 8px; text-align: right; font-size: 0.9em; }
th { background: #eee; } td.text { text-align: left; }
tr.flagged td { background: #fdecea; }
section.case { border-top: 2px solid #c62828; margin-top: 1.2em; }
ul.reasons li { color: #b71c1c; }
img { max-width: 100%; border: 1px solid #999; }
"""


def _overview(report: QcReport) -> str:
    rows = []
    for case in report.cases:
        worst = min(
            (
                min(label.measures.estimated_dice, *label.measures.member_dice)
                for label in case.labels
            ),
            default=1.0,
        )
        flagged = [label.name for label in case.labels if label.flagged]
        link = (
            f'<a href="#case-{html.escape(case.case)}">{html.escape(case.case)}</a>'
            if case.flagged
            else html.escape(case.case)
        )
        rows.append(
            f'<tr class="{"flagged" if case.flagged else "ok"}"><td class="text">{link}</td>'
            f"<td>{case.risk:.2f}</td><td>{worst:.2f}</td>"
            f'<td class="text">{html.escape(", ".join(flagged)) or "-"}</td></tr>'
        )
    return (
        "<table><tr><th>case</th><th>risk</th><th>lowest member agreement (Dice)</th>"
        "<th>flagged labels</th></tr>" + "".join(rows) + "</table>"
    )


def _case_section(case: CaseQuality, members: tuple[str, ...], figure: Path | None) -> str:
    reasons = "".join(
        f"<li>{html.escape(label.name)}: {html.escape(reason)}</li>"
        for label in case.labels
        for reason in label.reasons
    )
    head = "".join(f"<th>{html.escape(m)} ml</th><th>{html.escape(m)} Dice</th>" for m in members)
    rows = []
    for label in case.labels:
        m = label.measures
        cells = "".join(
            f"<td>{v:.3g}</td><td>{d:.2f}</td>"
            for v, d in zip(m.member_volumes_ml, m.member_dice, strict=True)
        )
        rows.append(
            f'<tr class="{"flagged" if label.flagged else "ok"}">'
            f'<td class="text">{html.escape(label.name)}</td><td>{m.volume_ml:.3g}</td>{cells}'
            f"<td>{m.volume_cv:.2f}</td><td>{m.components}</td><td>{m.estimated_dice:.2f}</td></tr>"
        )
    image = ""
    if figure is not None:
        data = base64.b64encode(figure.read_bytes()).decode("ascii")
        image = f'<img alt="slices of {html.escape(case.case)}" src="data:image/png;base64,{data}">'
    return (
        f'<section class="case" id="case-{html.escape(case.case)}">'
        f"<h2>{html.escape(case.case)} (risk {case.risk:.2f})</h2>"
        f'<ul class="reasons">{reasons}</ul>'
        f"<table><tr><th>label</th><th>fused ml</th>{head}<th>volume CV</th>"
        f"<th>components</th><th>estimated Dice</th></tr>{''.join(rows)}</table>"
        f"{image}</section>"
    )


def render_html(report: QcReport, figures: Mapping[str, Path]) -> str:
    """The page of ``report``; ``figures`` maps a flagged case to its PNG (inlined)."""
    flagged = report.flagged
    sections = "".join(
        _case_section(case, report.members, figures.get(case.case)) for case in flagged
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>nnunet-ext QC report</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Quality check: cases to look at before upload</h1>"
        f"<p>{len(flagged)} of {len(report.cases)} case(s) flagged. Members: "
        f"{html.escape(', '.join(report.members))}. Cases sorted by risk.</p>"
        f"{_overview(report)}{sections}</body></html>\n"
    )


def write_html_report(
    report: QcReport, figures: Mapping[str, Path], path: str | os.PathLike[str]
) -> Path:
    """Write :func:`render_html`'s page to ``path`` atomically."""
    final = Path(path)
    with atomic_path(final) as tmp:
        tmp.write_text(render_html(report, figures), encoding="utf-8")
    return final
