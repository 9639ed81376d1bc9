"""Report a :class:`~nnunet_ext.tune.api.TuneResult`: spec, JSON report, PNG of gains, table."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ext.tune.api import TuneResult

__all__ = ["format_table", "report_dict", "write_outputs"]


def _f(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def report_dict(result: TuneResult) -> dict[str, Any]:
    """Return the JSON report (per-label Dice of each baseline and tuned, gains, weights)."""
    labels = []
    for j, (label, name) in enumerate(zip(result.label_ids, result.label_names, strict=True)):
        labels.append(
            {
                "label": label,
                "name": name,
                "dice": {k: float(v[j]) for k, v in result.baselines.items()}
                | {"tuned": float(result.dice[j])},
                "in_sample_gain": float(result.in_sample_gain[j]),
                "held_out_gain": None if result.cv_gain is None else float(result.cv_gain[j]),
                "weights": {
                    d: float(result.weights[m, label]) for m, d in enumerate(result.input_dirs)
                },
            }
        )
    return {
        "schema_version": 1,
        "input_dirs": result.input_dirs,
        "reference_dir": result.reference_dir,
        "cases": result.cases,
        "left_out": result.left_out,
        "background_weights": {
            d: float(result.weights[m, 0]) for m, d in enumerate(result.input_dirs)
        },
        "labels": labels,
        "warnings": result.warnings,
        "timings": result.timings,
    }


def format_table(result: TuneResult) -> str:
    """Per-label Dice table: each model, equal weights, tuned, gains, chosen weights."""
    models = result.input_dirs
    header = ["label", *[f"m{m}" for m in range(len(models))], "equal", "tuned", "gain", "held-out"]
    header.append("weights (" + ", ".join(f"m{m}" for m in range(len(models))) + ")")
    rows = []
    for j, (label, name) in enumerate(zip(result.label_ids, result.label_names, strict=True)):
        cv = "n/a" if result.cv_gain is None else f"{result.cv_gain[j]:+.4f}"
        rows.append(
            [
                f"{label} {name}",
                *[_f(float(result.baselines[d][j])) for d in models],
                _f(float(result.baselines["equal"][j])),
                _f(float(result.dice[j])),
                f"{result.in_sample_gain[j]:+.4f}",
                cv,
                " ".join(f"{w:.2f}" for w in result.weights[:, label]),
            ]
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    legend = [f"m{m} = {d}" for m, d in enumerate(models)]
    legend.append(f"{len(result.cases)} case(s) used, {len(result.left_out)} left out")
    return "\n".join([*lines, "", *legend, *(f"warning: {w}" for w in result.warnings)])


def _plot(result: TuneResult, path: Path) -> None:
    # The object-oriented API: no pyplot state, no process-wide backend switch (notebooks).
    from matplotlib.figure import Figure

    x = np.arange(len(result.label_ids))
    fig = Figure(figsize=(max(4.0, 1.2 * len(x) + 2), 3.5))
    ax = fig.subplots()
    gain = np.nan_to_num(result.in_sample_gain)
    ax.bar(x - 0.2, gain, width=0.4, label="in-sample gain")
    if result.cv_gain is not None:
        ax.bar(x + 0.2, np.nan_to_num(result.cv_gain), width=0.4, label="held-out gain")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"{n}" for n in result.label_names])
    ax.set_ylabel("Dice gain over equal weights")
    ax.set_title("Tuned per-label ensemble weights")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")


def write_outputs(
    result: TuneResult,
    spec_path: str | os.PathLike[str],
    *,
    report_path: str | os.PathLike[str] | None = None,
    figure_path: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path, Path]:
    """Write the ensemble spec, the JSON report and the PNG figure, each atomically.

    Defaults: ``<spec stem>_report.json`` and ``<spec stem>_gains.png`` beside the spec.

    Returns:
        ``(spec, report, figure)`` paths.
    """
    from nnunet_ext.io import atomic_path, write_json

    spec_file = Path(spec_path)
    report_file = (
        Path(report_path) if report_path else spec_file.with_name(f"{spec_file.stem}_report.json")
    )
    figure_file = (
        Path(figure_path) if figure_path else spec_file.with_name(f"{spec_file.stem}_gains.png")
    )
    with atomic_path(figure_file) as tmp:
        _plot(result, tmp)
    write_json(report_file, report_dict(result))
    result.spec().save(spec_file)
    return spec_file, report_file, figure_file
