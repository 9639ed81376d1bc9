"""Report a :class:`~nnunet_ext.tune.region_api.RegionTuneResult`: spec, JSON, PNG, table."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

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
    chosen weights and threshold, and its step's held-out verdict; with a metric other than
    Dice also that metric's values (:func:`_metric_entry`), the step judged on it.
    """
    steps = {step.channel: step for step in result.steps}
    regions = []
    in_sample = "in_sample_dice" if result.metric_values is None else "in_sample_metric"
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
                **_metric_entry(result, r),
                "threshold": result.thresholds[r],
                "from": None if result.from_member(r) is None else result.from_member(r),
                "step": None
                if step is None
                else {
                    "weights": [float(w) for w in step.weights],
                    "threshold": step.threshold,
                    in_sample: _number(step.in_sample),
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
        "metric": result.metric,
        "input_dirs": result.input_dirs,
        "reference_dir": result.reference_dir,
        "cases": result.cases,
        "left_out": result.left_out,
        "regions": regions,
        "warnings": result.warnings,
        "timings": result.timings,
    }


def _metric_entry(result: RegionTuneResult, r: int) -> dict[str, Any]:
    """``metric``, ``held_out_metric`` and ``held_out_metric_gain`` of region ``r`` (or none).

    The gain is positive when the tuned ensemble is better than equal weights and 0.5 in the
    metric's direction (so a lower HD95 is a positive gain).
    """
    values, gain = result.metric_values, result.metric_gain
    if values is None:
        return {}
    return {
        "metric": {k: _number(float(v[r])) for k, v in values.items() if k != "held_out"},
        "held_out_metric": _number(float(values["held_out"][r])) if "held_out" in values else None,
        "held_out_metric_gain": None if gain is None else _number(float(gain[r])),
    }


def _table(
    result: RegionTuneResult,
    baselines: dict[str, NDArray[np.float64]],
    tuned: NDArray[np.float64],
    gain: NDArray[np.float64] | None,
) -> list[str]:
    """Rows: each region's models, equal, tuned and held-out gain, aligned."""
    models = result.input_dirs
    header = ["region", *[f"M{m}" for m in range(len(models))], "equal", "tuned", "held-out gain"]
    rows = [header]
    for r, name in enumerate(result.region_names):
        rows.append(
            [
                name,
                *[_f(float(baselines[d][r])) for d in models],
                _f(float(baselines["equal"][r])),
                _f(float(tuned[r])),
                "n/a" if gain is None else f"{gain[r]:+.4f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_region_table(result: RegionTuneResult) -> str:
    """Per-region Dice table: each model, equal weights and 0.5, tuned, held-out gain.

    With a metric other than Dice, that metric's table follows (its held-out gain positive
    when better in the metric's direction).
    """
    models = result.input_dirs
    lines = _table(result, result.baselines, result.dice, result.cv_gain)
    if result.metric_values is not None:
        direction = "higher" if result.higher_is_better else "lower"
        lines = ["Dice", *lines, ""]
        lines.append(f"{result.metric} ({direction} is better; the steps and guard decided on it)")
        lines += _table(
            result, result.metric_values, result.metric_values["tuned"], result.metric_gain
        )
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
