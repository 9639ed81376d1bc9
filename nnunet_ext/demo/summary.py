"""What the demo measured and where it put everything, and the summary printed at the end."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_ext.demo.config import CONFIGURATIONS

__all__ = ["DemoResult", "best_single_model", "format_summary"]


@dataclass
class DemoResult:
    """Where the demo put everything, and the numbers it measured.

    Attributes:
        output_dir: The demo folder.
        paths: Artefact name to path (dataset, folds, spec, plan, predictions, zip, ...).
        training: Per ``"<configuration>/fold_<k>"``, our trainer's run record.
        dice: Per method (``"2d"``, ``"3d_fullres"``, ``"ensemble (equal)"``,
            ``"ensemble (tuned)"``, ``"tuned + postprocessing"``), per label name, the mean
            Dice on the test cases (NaN where undefined).
        hd95: The same for HD95 in mm (NaN where undefined: a side empty in every case).
        timings: Seconds per step.
        routes: Seconds and intermediate ``.npz``/``.pkl`` bytes of the tuned test-set ensemble
            by ``nnunet-ext predict --spec`` and by the npz route (nnUNetv2_predict
            --save_probabilities per model + ensemble), and whether their labels are identical.
        estimates: Per row (``"CV gain over equal"``: the tuner's k-fold estimate on the CV
            cases; ``"hold-out gain over equal"`` and ``"hold-out minus best member"``: the
            tuned spec on labeled cases no fold trained on, predicted by the fold-averaged
            members), per label name.
        comparison: The verdict of the tuned, postprocessed ensemble against equal weights
            (:func:`~nnunet_ext.demo.comparison.compare_with_equal_weights`); empty if not run.
        quality: The test cases the tuned ensemble's ``--qc`` flags, with their reasons
            (:func:`~nnunet_ext.demo.quality.flagged_test_cases`); empty if not run.
    """

    output_dir: Path
    paths: dict[str, Path] = field(default_factory=dict)
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    dice: dict[str, dict[str, float]] = field(default_factory=dict)
    hd95: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    routes: dict[str, dict[str, float]] = field(default_factory=dict)
    estimates: dict[str, dict[str, float]] = field(default_factory=dict)
    comparison: str = ""
    quality: str = ""


def best_single_model(dice: Mapping[str, Mapping[str, float]]) -> str | None:
    """The configuration with the highest mean foreground Dice on the test cases (first on ties).

    Examples:
        >>> best_single_model({"2d": {"foreground mean": 0.8},
        ...                    "3d_fullres": {"foreground mean": 0.9},
        ...                    "ensemble (equal)": {"foreground mean": 0.95}})
        '3d_fullres'
    """
    candidates = [
        (float(dice[c].get("foreground mean", math.nan)), -i, c)
        for i, c in enumerate(CONFIGURATIONS)
        if c in dice
    ]
    candidates = [item for item in candidates if not math.isnan(item[0])]
    return max(candidates)[2] if candidates else None


def _training_lines(result: DemoResult) -> list[str]:
    """How each training run ended, and the cost of the two routes to the tuned ensemble."""
    lines = ["Training (-tr CustomEpochs, early stopping on)"]
    for key, record in result.training.items():
        stop = record.get("stop")
        how = f"stopped early: {stop['message']}" if isinstance(stop, dict) else "ran all epochs"
        lines.append(
            f"  {key:<18} {record['epochs_completed']:>3} of "
            f"{record['settings']['num_epochs']} epochs, best epoch {record['best_epoch']}; {how}"
        )
    if result.routes:
        ours, npz = result.routes["nnunet-ext predict --spec"], result.routes["npz route"]
        lines += [
            "",
            f"Tuned ensemble of the test images: nnunet-ext predict --spec {ours['seconds']:.0f} s,"
            f" no intermediate files; the npz route (nnUNetv2_predict --save_probabilities per "
            f"model + ensemble) {npz['seconds']:.0f} s and {npz['npz_bytes'] / 2**20:.1f} MiB of "
            f".npz/.pkl; labels {'identical' if npz['identical_labels'] else 'DIFFERENT'}.",
        ]
    return lines


def _estimate_lines(result: DemoResult, names: list[str], width: int) -> list[str]:
    """The tuner's CV estimate beside the hold-out estimate, per label (when there is one)."""
    if not result.estimates:
        return []
    lines = [
        "",
        "Two estimates of the tuned ensemble before the test cases (tune --holdout): CV cases "
        "predicted by one fold model each, hold-out cases by the fold-averaged models",
    ]
    shown = [n for n in names if n != "foreground mean"]
    lines.append(" " * width + "".join(f"{n:>16}" for n in shown))
    for row, values in result.estimates.items():
        cells = "".join(
            f"{'NaN' if math.isnan(values.get(n, math.nan)) else f'{values[n]:+.4f}':>16}"
            for n in shown
        )
        lines.append(f"{row:<{width}}{cells}")
    return lines


def format_summary(result: DemoResult) -> str:
    """Render the per-label Dice table, the training outcomes and where everything is."""
    lines = _training_lines(result)
    names = list(next(iter(result.dice.values())))
    rows = dict(result.dice)
    best = best_single_model(result.dice)
    if best is not None:
        # the best single model beside the ensembles: what an ensemble has to beat
        rows = {}
        for method, row in result.dice.items():
            if method not in CONFIGURATIONS and f"best single ({best})" not in rows:
                rows[f"best single ({best})"] = result.dice[best]
            rows[method] = row
    final = "tuned + postprocessing"
    delta_row = f"{final} - best single"
    show_delta = best is not None and final in result.dice
    width = max([len(m) for m in rows] + ([len(delta_row)] if show_delta else [])) + 2

    def cell(value: float) -> str:
        return f"{'NaN' if math.isnan(value) else f'{value:.4f}':>16}"

    lines += ["", "Mean Dice on the test cases (NaN: label absent in reference and prediction)"]
    lines.append(" " * width + "".join(f"{n:>16}" for n in names))
    for method, row in rows.items():
        lines.append(f"{method:<{width}}" + "".join(cell(v) for v in row.values()))
    if show_delta and best is not None:
        deltas = [result.dice[final][n] - result.dice[best][n] for n in names]
        lines.append(
            f"{delta_row:<{width}}"
            + "".join(f"{'NaN' if math.isnan(d) else f'{d:+.4f}':>16}" for d in deltas)
        )
    if result.hd95:
        lines += ["", "Mean HD95 in mm on the test cases (NaN: a side empty in every case)"]
        lines.append(" " * width + "".join(f"{n:>16}" for n in names))
        for method, row in result.hd95.items():
            cells = "".join(f"{'NaN' if math.isnan(v) else f'{v:.2f}':>16}" for v in row.values())
            lines.append(f"{method:<{width}}{cells}")
    if result.quality:
        lines += ["", result.quality]
    if result.comparison:
        lines += ["", result.comparison]
    lines += ["", "Where everything is"]
    lines += [f"  {name:<22} {path}" for name, path in result.paths.items()]
    lines += _estimate_lines(result, names, width)
    total = sum(result.timings.values())
    lines += [
        "",
        f"Total {total / 60:.1f} min; slowest steps: "
        + ", ".join(
            f"{k} {v:.0f} s" for k, v in sorted(result.timings.items(), key=lambda kv: -kv[1])[:4]
        ),
    ]
    return "\n".join(lines)
