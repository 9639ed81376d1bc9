"""Report a :class:`~nnunet_ext.tune.api.TuneResult`: spec, JSON report, PNG of gains, table."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ext._stats import nan_mean
from nnunet_ext.io import atomic_path, write_json
from nnunet_ext.tune.api import TuneResult

__all__ = ["format_table", "report_dict", "write_outputs"]


def _f(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _rule_entries(result: TuneResult) -> dict[int, dict[str, Any]]:
    """Per label: the rule taken, the decision steps and every candidate's Dice."""
    out: dict[int, dict[str, Any]] = {}
    index = {label: j for j, label in enumerate(result.label_ids)}
    for priority, decision in enumerate(result.decisions):
        j = index[decision.label]
        out[decision.label] = {
            "rule": decision.chosen.describe(),
            "decision_order": priority,
            "decision": [
                {
                    "rule": step["kind"],
                    "over": step["over"],
                    "held_out_gain": step["gain"],
                    "noise": step["noise"],
                    "taken": step["taken"],
                    "basis": step.get("basis", "mean foreground Dice"),
                }
                for step in decision.steps
            ],
            "candidates": [
                {
                    "rule": candidate.describe(),
                    "in_sample_dice": _number(float(in_sample[j])),
                    "held_out_dice": None if held.size == 0 else _number(float(held[j])),
                    "in_sample_mean_dice": _number(nan_mean(in_sample)),
                    "held_out_mean_dice": None if held.size == 0 else _number(nan_mean(held)),
                }
                for candidate, in_sample, held in decision.candidates
            ],
        }
    return out


def _weight_entries(result: TuneResult) -> dict[int, dict[str, Any]]:
    """Per label: the weight gate's steps and every candidate spec's Dice."""
    out: dict[int, dict[str, Any]] = {}
    index = {label: j for j, label in enumerate(result.label_ids)}
    for decision in result.weight_decisions:
        j = index[decision.label]
        out[decision.label] = {
            "weights_taken": decision.taken,
            "weights_decision": [
                {
                    "step": step["step"],
                    "columns": step["columns"],
                    "held_out_gain": step["gain"],
                    "noise": step["noise"],
                    "other_label_drop_beyond_noise": step["other_drop"],
                    "held_out_foreground_gain": step["foreground_gain"],
                    "taken": step["taken"],
                }
                for step in decision.steps
            ],
            "weights_candidates": [
                {
                    "weights": name,
                    "in_sample_dice": _number(float(in_sample[j])),
                    "held_out_dice": _number(float(held[j])),
                    "in_sample_mean_dice": _number(nan_mean(in_sample)),
                    "held_out_mean_dice": _number(nan_mean(held)),
                }
                for name, in_sample, held in decision.candidates
            ],
        }
    return out


def report_dict(result: TuneResult) -> dict[str, Any]:
    """Return the JSON report.

    Per label: the Dice of each baseline, of the tuned weights and of the tuned weights + rule,
    gains, weights, and every rule candidate's in-sample and held-out Dice with the decision
    (held-out gain, bootstrap noise, taken or not).
    """
    labels = []
    rules = _rule_entries(result)
    weight_steps = _weight_entries(result)
    for j, (label, name) in enumerate(zip(result.label_ids, result.label_names, strict=True)):
        dice = {k: float(v[j]) for k, v in result.baselines.items()}
        if result.weights_dice is not None:
            dice["tuned weights"] = float(result.weights_dice[j])
        entry: dict[str, Any] = {
            "label": label,
            "name": name,
            "dice": dice | {"tuned": float(result.dice[j])},
            "in_sample_gain": float(result.in_sample_gain[j]),
            "held_out_gain": None if result.cv_gain is None else float(result.cv_gain[j]),
            "weights": {
                d: float(result.weights[m, label]) for m, d in enumerate(result.input_dirs)
            },
            "rule": "weighted",
            "left_to_rules": label in result.rule_labels,
        }
        entry.update(rules.get(label, {}))
        entry.update(weight_steps.get(label, {}))
        labels.append(entry)
    return {
        "schema_version": 2,
        "input_dirs": result.input_dirs,
        "reference_dir": result.reference_dir,
        "cases": result.cases,
        "left_out": result.left_out,
        "splits": result.splits,
        "background_weights": {
            d: float(result.weights[m, 0]) for m, d in enumerate(result.input_dirs)
        },
        "labels": labels,
        "rules": [
            {"label": label, "rule": kind, "member": member, "scale": scale}
            for label, kind, member, scale in result.rules
        ],
        "warnings": result.warnings,
        "timings": result.timings,
    }


def format_table(result: TuneResult) -> str:
    """Per-label Dice table: each model, equal weights, tuned, gains, chosen weights."""
    models = result.input_dirs
    header = ["label", *[f"m{m}" for m in range(len(models))], "equal", "tuned", "gain", "held-out"]
    header.append("weights (" + ", ".join(f"m{m}" for m in range(len(models))) + ")")
    header.append("rule")
    rules = {d.label: d.chosen.describe() for d in result.decisions}
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
                rules.get(label, "weighted"),
            ]
        )
    lines = _columns([header, *rows])
    lines += _weight_lines(result)
    for decision in result.decisions:
        j = result.label_ids.index(decision.label)
        name = result.label_names[j]
        lines += ["", f"label {decision.label} {name}: rule candidates (Dice of this label)"]
        table = [["candidate", "in-sample", "held-out"]]
        for candidate, in_sample, held in decision.candidates:
            mark = " *" if candidate == decision.chosen else ""
            table.append(
                [
                    candidate.describe() + mark,
                    _f(float(in_sample[j])),
                    "n/a" if held.size == 0 else _f(float(held[j])),
                ]
            )
        lines += ["  " + line for line in _columns(table)]
        for step in decision.steps:
            if step["gain"] is None:
                lines.append(f"  {step['kind']}: no admissible choice or no held-out folds")
                continue
            verdict = "taken" if step["taken"] else "not taken"
            basis = step.get("basis", "mean foreground Dice")
            if basis.startswith("baseline"):
                reason = basis.removeprefix("baseline: ")
                basis, verdict = "mean foreground Dice", f"taken as the baseline ({reason})"
            lines.append(
                f"  {step['kind']} over {step['over']}: held-out gain {step['gain']:+.4f} "
                f"({basis}), noise {step['noise']:.4f} -> {verdict}"
            )
    legend = _legend(result, models)
    return "\n".join([*lines, "", *legend, *(f"warning: {w}" for w in result.warnings)])


def _legend(result: TuneResult, models: list[str]) -> list[str]:
    """The lines under the table: models, cases, and the decision rules in force."""
    legend = [f"m{m} = {d}" for m, d in enumerate(models)]
    legend.append(f"{len(result.cases)} case(s) used, {len(result.left_out)} left out")
    if result.weight_decisions:
        legend.append(
            "weights: a label's tuned columns are taken only if their held-out gain exceeds twice "
            "its per-case bootstrap standard error and no other label drops beyond its noise"
        )
    if result.splits:
        legend.append(
            f"nnU-Net folds from {result.splits}: a model one of whose fold models predicts a "
            "label (half the best model's Dice on that fold's cases) is not blind to it"
        )
    if result.rule_labels:
        names = ", ".join(
            f"{label} {result.label_names[result.label_ids.index(label)]}"
            for label in result.rule_labels
        )
        legend.append(
            f"left to the rules (one model alone predicts it): {names}; the weight search aims "
            "at its equal-weight Dice, and its drop under the weights alone does not hold back "
            "another label's step"
        )
    if result.decisions:
        legend.append(
            "rules: a more complex rule (weighted < from < scale) is taken only if its held-out "
            "gain exceeds twice its per-case bootstrap standard error; * = chosen"
        )
        legend.append(
            "a label every other model is blind to (own Dice below half the best model's, beyond "
            "the noise) starts from 'from' the best model; weighted replaces it only with a "
            "held-out gain on the label beyond the noise"
        )
    return legend


def _weight_lines(result: TuneResult) -> list[str]:
    """The weight gate per label: each candidate spec's Dice and each step's verdict."""
    lines: list[str] = []
    for decision in result.weight_decisions:
        j = result.label_ids.index(decision.label)
        name = result.label_names[j]
        lines += ["", f"label {decision.label} {name}: weight steps (Dice of this label)"]
        table = [["weights", "in-sample", "held-out"]]
        for i, (step_name, in_sample, held) in enumerate(decision.candidates):
            chosen = step_name == decision.taken or (decision.taken is None and i == 0)
            table.append(
                [step_name + (" *" if chosen else ""), _f(float(in_sample[j])), _f(float(held[j]))]
            )
        lines += ["  " + line for line in _columns(table)]
        for step in decision.steps:
            verdict = "taken" if step["taken"] else "not taken"
            drop = f", another label drops {step['other_drop']:.4f} beyond its noise"
            lines.append(
                f"  tuned {step['step']}: held-out gain {step['gain']:+.4f}, noise "
                f"{step['noise']:.4f}{drop if step['other_drop'] > 0 else ''} -> {verdict}"
            )
    return lines


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _plot(result: TuneResult, path: Path) -> None:
    # The object-oriented API: no pyplot state, no process-wide backend switch (notebooks).
    from matplotlib.figure import Figure

    x = np.arange(len(result.label_ids))
    panels = [
        (title, groups)
        for title, groups in (
            ("Weight steps", _weight_groups(result)),
            ("Rule candidates", _rule_groups(result)),
        )
        if groups
    ]
    if panels:
        fig = Figure(figsize=(max(8.0, 2.2 * len(x) + 4), 3.5 * (1 + len(panels))))
        ax, *candidate_axes = fig.subplots(1 + len(panels), 1)
        for candidate_ax, (title, groups) in zip(candidate_axes, panels, strict=True):
            _plot_candidates(candidate_ax, groups, title)
    else:
        fig = Figure(figsize=(max(4.0, 1.2 * len(x) + 2), 3.5))
        ax = fig.subplots()
    gain = np.nan_to_num(result.in_sample_gain)
    ax.bar(x - 0.2, gain, width=0.4, label="in-sample gain")
    if result.cv_gain is not None:
        ax.bar(x + 0.2, np.nan_to_num(result.cv_gain), width=0.4, label="held-out gain")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"{n}" for n in result.label_names])
    ax.set_ylabel("Dice gain over equal weights")
    ax.set_title("Tuned per-label ensemble (weights and rules)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")


#: Per label: its name, its index in the Dice arrays, and ``(candidate, in-sample, held-out,
#: chosen)`` for each candidate.
_Groups = list[tuple[str, int, list[tuple[str, Any, Any, bool]]]]


def _rule_groups(result: TuneResult) -> _Groups:
    groups: _Groups = []
    for decision in sorted(result.decisions, key=lambda d: d.label):
        j = result.label_ids.index(decision.label)
        bars = [
            (candidate.describe(), in_sample, held, candidate == decision.chosen)
            for candidate, in_sample, held in decision.candidates
        ]
        groups.append((result.label_names[j], j, bars))
    return groups


def _weight_groups(result: TuneResult) -> _Groups:
    groups: _Groups = []
    for decision in sorted(result.weight_decisions, key=lambda d: d.label):
        j = result.label_ids.index(decision.label)
        bars = [
            (name, in_sample, held, name == decision.taken or (decision.taken is None and i == 0))
            for i, (name, in_sample, held) in enumerate(decision.candidates)
        ]
        groups.append((result.label_names[j], j, bars))
    return groups


def _plot_candidates(ax: Any, groups: _Groups, title: str) -> None:
    """Every candidate's in-sample (solid) and held-out (hatched) Dice, per label."""
    names = list(dict.fromkeys(name for _, _, bars in groups for name, *_ in bars))
    n = max(len(bars) for _, _, bars in groups)
    step = 0.8 / (2 * n)
    labelled: set[str] = set()
    for g, (_, j, bars) in enumerate(groups):
        for i, (name, in_sample, held, chosen) in enumerate(bars):
            left = g - 0.4 + 2 * i * step
            color = f"C{names.index(name) % 10}"
            edge = {"edgecolor": "black", "linewidth": 1.5} if chosen else {}
            legend = None if name in labelled else name
            labelled.add(name)
            ax.bar(left, np.nan_to_num(in_sample[j]), width=step, color=color, label=legend, **edge)
            if held.size:
                ax.bar(
                    left + step,
                    np.nan_to_num(held[j]),
                    width=step,
                    color=color,
                    alpha=0.5,
                    hatch="//",
                    **edge,
                )
    ax.set_xticks(np.arange(len(groups)), [name for name, _, _ in groups])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Dice of the label")
    ax.set_title(f"{title}: in-sample (solid), held-out (hatched); chosen outlined")
    ax.legend(fontsize=7, ncol=4, loc="lower left")


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
