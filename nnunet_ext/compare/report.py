"""Show and write a comparison: the text tables, the strict-JSON report and the PNG figure."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nnunet_ext.compare.results import Comparison, Difference
from nnunet_ext.compare.stats import A_BETTER, B_BETTER
from nnunet_ext.io import atomic_path, write_json

__all__ = ["format_comparison", "plot_comparison", "summary_line", "write_comparison"]

_COLOURS = {B_BETTER: "tab:green", A_BETTER: "tab:red"}
#: Columns in mm, shown with 2 decimals (the others with 4).
_DISTANCES = ("HD", "HD95", "HD95_pooled", "ASSD")


def _f(value: float, digits: int = 4, *, sign: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.0f} %"


def _columns(rows: Sequence[Sequence[str]], right_from: int) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.rjust(w) if i >= right_from else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _pair_table(rows: Sequence[Difference]) -> list[str]:
    a, b = rows[0].a, rows[0].b
    header = [
        "label",
        "name",
        "metric",
        a,
        b,
        "B - A",
        "95 % interval",
        "B wins",
        "A wins",
        "verdict",
    ]
    table = [header]
    for d in rows:
        digits = 2 if d.metric in _DISTANCES else 4
        table.append(
            [
                d.label if d.label is not None else "",
                d.name,
                d.metric + ("" if d.higher_is_better else " (lower better)"),
                _f(d.mean_a, digits),
                _f(d.mean_b, digits),
                _f(d.difference, digits, sign=True),
                f"[{_f(d.interval[0], digits, sign=True)}, {_f(d.interval[1], digits, sign=True)}]",
                _pct(d.b_better),
                _pct(d.a_better),
                d.verdict,
            ]
        )
    return [f"B = {b} against A = {a}:", *_columns(table, right_from=3)]


def _ranking_table(comparison: Comparison) -> list[str]:
    header = ["label", "name", "metric", *comparison.versions]
    table = [header]
    for s in comparison.ranking:
        table.append(
            [
                s.label if s.label is not None else "",
                s.name,
                s.metric,
                *(
                    f"{_f(m, 2)} (#{r:g}, {_pct(p)})"
                    for m, r, p in zip(s.mean_rank, s.rank, s.probability_first, strict=True)
                ),
            ]
        )
    return [
        "Ranks: mean rank over the cases (#place, probability of ranking first over the "
        "resamples); per case 1 is the best, ties share, an undefined value ranks last:",
        *_columns(table, right_from=3),
    ]


def format_comparison(comparison: Comparison) -> str:
    """Render the comparison as text: one table per pair of versions, then the ranks."""
    left = [f"{n}: {len(c)}" for n, c in comparison.left_out.items() if c]
    lines = [
        f"{len(comparison.cases)} cases compared"
        + (f" (left out, not in every file: {', '.join(left)})" if left else "")
        + f"; {comparison.samples} paired bootstrap resamples of the cases (seed "
        f"{comparison.seed}), {100 * comparison.confidence:g} % percentile intervals.",
    ]
    for b in comparison.versions[1:]:
        rows = [d for d in comparison.differences if d.b == b]
        lines += ["", *_pair_table(rows)]
    if comparison.ranking:
        lines += ["", *_ranking_table(comparison)]
    return "\n".join(lines)


def summary_line(comparison: Comparison) -> str:
    """One line per later version: how many labels and metrics each verdict got, and the score.

    Examples:
        >>> from nnunet_ext.compare.results import Difference
        >>> row = Difference("equal", "tuned", "1", "LV", "Dice", True, 0.8, 0.81, 0.01,
        ...                  (0.004, 0.016), 10, 0.7, 0.1, "B better")
        >>> summary_line(Comparison(("equal", "tuned"), ("e.json", "t.json"), ("c",), {}, {},
        ...                         2000, 0, 0.95, (row,)))
        'tuned vs equal: B better on 1 of 1 label/metric rows'
    """
    parts = []
    for b in comparison.versions[1:]:
        rows = [d for d in comparison.differences if d.b == b and d.label is not None]
        counts = {v: sum(d.verdict == v for d in rows) for v in (B_BETTER, A_BETTER)}
        text = f"{b} vs {comparison.versions[0]}: " + ", ".join(
            f"{verdict} on {n} of {len(rows)} label/metric rows"
            for verdict, n in counts.items()
            if n
        )
        if not any(counts.values()):
            text += f"no difference beyond noise on the {len(rows)} label/metric rows"
        score = [d for d in comparison.differences if d.b == b and d.label is None]
        if score:
            d = score[0]
            text += f"; score {_f(d.difference, sign=True)} ({d.verdict})"
        parts.append(text)
    return "; ".join(parts)


def _panels(comparison: Comparison) -> tuple[list[tuple[str, str]], list[str]]:
    labels = list(dict.fromkeys((d.label or "", d.name) for d in comparison.differences))
    metrics = list(dict.fromkeys(d.metric for d in comparison.differences if d.label is not None))
    return labels, metrics


def plot_comparison(comparison: Comparison, path: str | os.PathLike[str]) -> None:
    """Draw each difference's interval against zero, right of zero: B better.

    A row of panels per label (and one for the score), a column per metric; the differences
    of lower-is-better metrics are drawn negated, so that right is better for every metric.
    """
    # The object-oriented API: no pyplot state, no process-wide backend switch (notebooks).
    from matplotlib.figure import Figure

    labels, metrics = _panels(comparison)
    pairs = [f"{b} vs {comparison.versions[0]}" for b in comparison.versions[1:]]
    fig = Figure(
        figsize=(max(4.0, 3.2 * len(metrics)), 0.9 + (0.5 + 0.35 * len(pairs)) * len(labels))
    )
    axes = fig.subplots(len(labels), len(metrics), squeeze=False)
    for row, (key, name) in enumerate(labels):
        for col, metric in enumerate(metrics):
            found = [
                d
                for d in comparison.differences
                if (d.label or "") == key and d.name == name and d.metric in (metric, "score")
            ]
            ax = axes[row][col]
            if not found or (found[0].metric == "score" and col > 0):
                ax.set_visible(False)
                continue
            _panel(ax, found, pairs)
            ax.set_title(f"{name}: {found[0].metric}", fontsize=9)
    fig.suptitle(
        "Gain of B over A with its 95 % interval (B - A; A - B where lower is better): "
        "right of 0, B is better",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(Path(path), dpi=100, format="png")


def _panel(ax: Any, rows: Sequence[Difference], pairs: Sequence[str]) -> None:
    for y, d in enumerate(rows):
        sign = 1.0 if d.higher_is_better else -1.0
        gain = sign * d.difference
        lo, hi = sorted(sign * v for v in d.interval)
        colour = _COLOURS.get(d.verdict, "tab:gray")
        if not math.isnan(gain):
            ax.errorbar(
                [gain],
                [y],
                xerr=[[max(gain - lo, 0.0)], [max(hi - gain, 0.0)]],
                fmt="o",
                color=colour,
                capsize=3,
            )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [pairs[i] for i in range(len(rows))], fontsize=7)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.tick_params(axis="x", labelsize=7)


def write_comparison(
    comparison: Comparison,
    *,
    json_path: str | os.PathLike[str] | None = None,
    figure_path: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write the JSON report and/or the PNG figure, each atomically; return what was written."""
    written = []
    if figure_path is not None:
        with atomic_path(Path(figure_path)) as tmp:
            plot_comparison(comparison, tmp)
        written.append(Path(figure_path))
    if json_path is not None:
        write_json(Path(json_path), comparison.to_json())
        written.append(Path(json_path))
    return written
