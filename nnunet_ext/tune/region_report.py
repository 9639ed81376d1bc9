"""Report a :class:`~nnunet_ext.tune.region_api.RegionTuneResult`: spec, JSON, PNG, table."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ext.io import atomic_path, write_json
from nnunet_ext.tune.region_api import RegionTuneResult

__all__ = ["format_region_table", "region_report_dict", "write_region_outputs"]


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _f(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _decision(result: RegionTuneResult, channel: int) -> str:
    """How the region is decided: ``from M``, or weights and threshold."""
    member = result.from_member(channel)
    if member is not None:
        return f"from {result.input_dirs[member]}"
    weights = " ".join(f"{w:.2f}" for w in result.weights[:, channel])
    return f"weights {weights}, threshold {result.thresholds[channel]:.2f}"


def region_report_dict(result: RegionTuneResult) -> dict[str, Any]:
    """The JSON report (``"kind": "regions"``).

    Per region: the Dice of each baseline and of the tuned setting, the held-out gain, the
    chosen weights and threshold, and its step's held-out verdict.
    """
    steps = {step.channel: step for step in result.steps}
    regions = []
    for r, name in enumerate(result.region_names):
        step = steps.get(r)
        verdict = None if step is None or step.verdict is None else step.verdict
        regions.append(
            {
                "region": name,
                "dice": {k: _number(float(v[r])) for k, v in result.baselines.items()}
                | {"tuned": _number(float(result.dice[r]))},
                "held_out_dice": None
                if result.held_out is None
                else _number(float(result.held_out[r])),
                "held_out_gain": None
                if result.cv_gain is None
                else _number(float(result.cv_gain[r])),
                "weights": {
                    d: float(result.weights[m, r]) for m, d in enumerate(result.input_dirs)
                },
                "threshold": result.thresholds[r],
                "from": None if result.from_member(r) is None else result.from_member(r),
                "step": None
                if step is None
                else {
                    "weights": [float(w) for w in step.weights],
                    "threshold": step.threshold,
                    "in_sample_dice": _number(step.in_sample),
                    "held_out_gain": None if verdict is None else _number(verdict["gain"]),
                    "noise": None if verdict is None else _number(verdict["noise"]),
                    "kept": step.kept,
                    "guarded_to": step.guarded,
                },
            }
        )
    return {
        "schema_version": 2,
        "kind": "regions",
        "input_dirs": result.input_dirs,
        "reference_dir": result.reference_dir,
        "cases": result.cases,
        "left_out": result.left_out,
        "regions": regions,
        "warnings": result.warnings,
        "timings": result.timings,
    }


def format_region_table(result: RegionTuneResult) -> str:
    """Per-region Dice table: each model, equal weights and 0.5, tuned, held-out gain."""
    models = result.input_dirs
    header = ["region", *[f"M{m}" for m in range(len(models))], "equal", "tuned", "held-out gain"]
    rows = [header]
    for r, name in enumerate(result.region_names):
        gain = "n/a" if result.cv_gain is None else f"{result.cv_gain[r]:+.4f}"
        rows.append(
            [
                name,
                *[_f(float(result.baselines[d][r])) for d in models],
                _f(float(result.baselines["equal"][r])),
                _f(float(result.dice[r])),
                gain,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines += [f"M{m}: {d}" for m, d in enumerate(models)]
    lines += [f"{name}: {_decision(result, r)}" for r, name in enumerate(result.region_names)]
    lines.append(f"{len(result.cases)} case(s) used, {len(result.left_out)} left out")
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def _plot(result: RegionTuneResult, path: Path) -> None:
    from matplotlib.figure import Figure

    x = np.arange(len(result.region_names))
    fig = Figure(figsize=(max(5.0, 1.6 * len(x) + 3), 3.8))
    ax = fig.subplots()
    bars = [(d, result.baselines[d]) for d in ("equal", *result.input_dirs)]
    bars.append(("tuned (in-sample)", result.dice))
    if result.held_out is not None:
        bars.append(("tuned (held-out)", result.held_out))
    width = 0.8 / len(bars)
    for i, (name, values) in enumerate(bars):
        label = name if name in ("equal",) or name.startswith("tuned") else Path(name).name
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, np.nan_to_num(values), width, label=label)
    ax.set_xticks(x, result.region_names)
    ax.set_ylabel("mean Dice of the region")
    ax.set_ylim(0, 1.05)
    ax.set_title("Tuned region ensemble: per-region weights and thresholds")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")


def write_region_outputs(
    result: RegionTuneResult,
    spec_path: str | os.PathLike[str],
    *,
    report_path: str | os.PathLike[str],
    figure_path: str | os.PathLike[str],
) -> tuple[Path, Path, Path]:
    """Write the ensemble spec, the JSON report and the PNG figure, each atomically.

    Returns:
        ``(spec, report, figure)`` paths.
    """
    spec_file, report_file, figure_file = Path(spec_path), Path(report_path), Path(figure_path)
    with atomic_path(figure_file) as tmp:
        _plot(result, tmp)
    write_json(report_file, region_report_dict(result))
    result.spec().save(spec_file)
    return spec_file, report_file, figure_file
