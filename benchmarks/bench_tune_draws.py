"""Tuning judged on many random draws of the demo, and the ablation of the tuner's parts.

``python benchmarks/bench_tune_draws.py --draws 10 --root DIR`` draws 10 seeds at random (printed
first, each run once: no seed is dropped or replaced), runs ``nnunet-ext demo --seed S -o
DIR/seed_S`` for each (a run already complete in ``DIR`` is read, not rerun), and prints per seed
each configuration's, equal weights' and tuned + postprocessing's test Dice per label, the
checks of issue 25 (every label >= 0.5 per configuration; 2d above 3d_fullres on RV) and issue
11's rule (tuned + postprocessing at least the best single model minus 0.02 and at least equal
weights on every label; its mean foreground Dice at least the best single model's), then the
pass rates, the mean and the worst gain over the best single model. ``--seeds S ...`` reruns
given seeds instead of drawing. ``--ablation`` re-tunes every run's kept CV probabilities with
each optional part of the procedure switched (:class:`nnunet_ext.tune.Procedure`: left out where
it is on by default, added where it is off; and the rules left out altogether), fuses the
kept test probabilities with each spec, applies the postprocessing plan determined on the fused
CV cases, and prints each variant's pass rate and mean gain.
``--json OUT`` keeps everything for the docs' results page, ``--markdown OUT`` its tables. The
draw is kept in ``DIR/seeds.txt``: run again, the same seeds go on.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nnunet_ext.demo.config import CONFIGURATIONS, DATASET_NAME
from nnunet_ext.demo.record import RECORD_NAME, read_record
from nnunet_ext.demo.summary import best_single_model
from nnunet_ext.ensemble import ensemble_folders
from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.postprocess import postprocess_folder
from nnunet_ext.tune import Procedure, tune_weights, write_outputs
from nnunet_ext.tune.postprocessing import determine_postprocessing

LABELS = ("myocardium", "LV", "RV")
FINAL = "tuned + postprocessing"
TOLERANCE = 0.02


def run_seed(root: Path, seed: int) -> tuple[dict[str, Any], float | None]:
    """The demo record of ``seed`` (run now unless kept) and the run's wall time if run now."""
    folder = root / f"seed_{seed}"
    if (folder / RECORD_NAME).is_file():
        return read_record(folder / RECORD_NAME), None
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "nnunet_ext", "demo", "--seed", str(seed), "-o", str(folder), "-q"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    print(f"seed {seed}: demo ran in {wall / 60:.1f} min (load average before: {load:.1f})")
    return read_record(folder / RECORD_NAME), wall


def judge(dice: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The checks of one seed's table (method -> label -> test Dice)."""
    best = best_single_model(dice)
    assert best is not None, "a demo record has both configurations' Dice"
    final, equal = dice[FINAL], dice["ensemble (equal)"]
    per_label = {
        label: {
            "vs_best": final[label] - dice[best][label],
            "vs_equal": final[label] - equal[label],
        }
        for label in LABELS
    }
    rule = all(
        v["vs_best"] >= -TOLERANCE - 1e-12 and v["vs_equal"] >= -1e-12 for v in per_label.values()
    )
    gain = final["foreground mean"] - dice[best]["foreground mean"]
    return {
        "best_single": best,
        "learns_every_label": {c: all(dice[c][n] >= 0.5 for n in LABELS) for c in CONFIGURATIONS},
        "2d_beats_3d_on_RV": dice["2d"]["RV"] > dice["3d_fullres"]["RV"],
        "per_label": per_label,
        "labels_pass": rule,
        "foreground_gain": gain,
        "foreground_pass": gain >= -1e-12,
        "passes": rule and gain >= -1e-12,
    }


def print_seed(seed: int, dice: dict[str, dict[str, float]], verdict: dict[str, Any]) -> None:
    print(f"\nseed {seed}" + " " * 22 + "".join(f"{n:>12}" for n in (*LABELS, "fg mean")))
    for method in (*CONFIGURATIONS, "ensemble (equal)", FINAL):
        row = dice[method]
        cells = "".join(f"{row[n]:>12.4f}" for n in (*LABELS, "foreground mean"))
        print(f"  {method:<29}{cells}")
    learns = ", ".join(
        f"{c} {'yes' if v else 'NO'}" for c, v in verdict["learns_every_label"].items()
    )
    print(
        f"  every label >= 0.5: {learns}; 2d > 3d on RV: "
        f"{'yes' if verdict['2d_beats_3d_on_RV'] else 'no'}; issue 11's rule: "
        f"{'PASS' if verdict['passes'] else 'FAIL'} "
        f"(labels {'ok' if verdict['labels_pass'] else 'FAIL'}, "
        f"foreground {verdict['foreground_gain']:+.4f} over {verdict['best_single']})"
    )


def estimates(records: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per seed and label: the CV and the hold-out estimates of the tuned ensemble's gain over
    equal weights beside its gain on the test cases; each estimate's mean absolute error."""
    rows: list[dict[str, Any]] = []
    errors: dict[str, list[float]] = {"CV": [], "hold-out": []}
    for seed, record in records.items():
        est, dice = record["estimates"], record["dice"]
        if not est:
            continue
        for label in LABELS:
            test = dice["ensemble (tuned)"][label] - dice["ensemble (equal)"][label]
            cv = est["CV gain over equal"][label]
            holdout = est["hold-out gain over equal"][label]
            rows.append({"seed": seed, "label": label, "cv": cv, "holdout": holdout, "test": test})
            errors["CV"].append(abs(cv - test))
            errors["hold-out"].append(abs(holdout - test))
    mae = {k: sum(v) / len(v) if v else math.nan for k, v in errors.items()}
    return {"rows": rows, "mean_absolute_error": mae}


def aggregate(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    gains = [v["foreground_gain"] for v in verdicts]
    return {
        "seeds": len(verdicts),
        "passes": sum(v["passes"] for v in verdicts),
        "labels_pass": sum(v["labels_pass"] for v in verdicts),
        "foreground_pass": sum(v["foreground_pass"] for v in verdicts),
        "mean_gain": sum(gains) / len(gains),
        "worst_gain": min(gains),
        "learns_every_label": {
            c: sum(v["learns_every_label"][c] for v in verdicts) for c in CONFIGURATIONS
        },
        "2d_beats_3d_on_RV": sum(v["2d_beats_3d_on_RV"] for v in verdicts),
    }


def _test_dice(folder: Path, references: Path, dataset_json: Path) -> dict[str, float]:
    evaluation = evaluate_folder(folder, references, dataset_json=dataset_json, metrics=["dice"])
    dice = {s.name: float(s.dice) for s in evaluation.labels}
    dice["foreground mean"] = float(evaluation.foreground_dice)
    return dice


def retune(
    run: Path, work: Path, procedure: Procedure, *, rules: bool, full: dict[str, Any] | None
) -> dict[str, Any]:
    """Tune the kept CV folders of ``run`` with ``procedure``; the test Dice of tuned + pp.

    A spec equal to the full procedure's (``full``) has its test Dice: it is not fused again.
    """
    references = run / "nnUNet_preprocessed" / DATASET_NAME / "gt_segmentations"
    cv = [run / "cross_validation" / c for c in CONFIGURATIONS]
    result = tune_weights(
        cv,
        references,
        splits=references.parent / "splits_final.json",
        procedure=procedure,
        rules=rules,
    )
    signature = json.dumps([result.weights.round(4).tolist(), result.rules])
    if full is not None and signature == full["signature"]:
        return {"signature": signature, "dice": full["dice"]}
    work.mkdir(parents=True)
    spec, _, _ = write_outputs(result, work / "spec.json")
    _, _, plan = determine_postprocessing(
        result, spec, fused_dir=work / "cv_fused", plan_path=work / "pp.json"
    )
    test = dataclasses.replace(
        result, input_dirs=[str(run / "predictions" / c) for c in CONFIGURATIONS]
    ).spec()
    ensemble_folders(None, work / "test_fused", spec=test)
    postprocess_folder(work / "test_fused", work / "test_pp", plan=plan)
    raw = run / "nnUNet_raw" / DATASET_NAME
    return {
        "signature": signature,
        "dice": _test_dice(work / "test_pp", raw / "labelsTs", raw / "dataset.json"),
    }


def tuner_version() -> str:
    """A hash of the tuner's and postprocessing's source: cached re-tunings of another are stale."""
    import nnunet_ext

    package = Path(nnunet_ext.__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*package.glob("tune/*.py"), *package.glob("postprocess/*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _retune_seed(run: Path, tmp: Path) -> dict[str, Any]:
    """Every variant on one kept run, cached in the run folder per tuner version."""
    cache = run / f"ablation_{tuner_version()}.json"
    if cache.is_file():
        cached: dict[str, Any] = json.loads(cache.read_text())
        return cached
    default = Procedure()
    variants: dict[str, tuple[Procedure, bool]] = {"full": (default, True)}
    for part in Procedure.parts():  # each part switched: left out if on, added if off
        on = getattr(default, part)
        switched = default.without(part) if on else default.including(part)
        variants[f"{'without' if on else 'with'} {part}"] = (switched, True)
    variants["without rules"] = (default, False)
    out: dict[str, Any] = {}
    for name, (procedure, rules) in variants.items():
        work = tmp / run.name / name.replace(" ", "_")
        out[name] = retune(run, work, procedure, rules=rules, full=out.get("full"))
    cache.write_text(json.dumps(out, indent=1) + "\n")
    return out


def ablation(root: Path, seeds: list[int], records: dict[int, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_tune_draws_") as tmp:
        for seed in seeds:
            outcomes = _retune_seed(root / f"seed_{seed}", Path(tmp))
            for name, outcome in outcomes.items():
                dice = dict(records[seed]["dice"])
                dice[FINAL] = outcome["dice"]
                out.setdefault(name, {})[seed] = {
                    "signature": outcome["signature"],
                    "same_spec_as_full": outcome["signature"] == outcomes["full"]["signature"],
                    "dice": outcome["dice"],
                    "verdict": judge(dice),
                }
    print("\nAblation: each optional part switched, the same kept models re-tuned")
    print(f"  {'variant':<28}{'passes':>8}{'mean gain':>12}{'worst':>10}{'specs changed':>15}")
    table = {}
    for name, per_seed in out.items():
        verdicts = [v["verdict"] for v in per_seed.values()]
        agg = aggregate(verdicts)
        changed = sum(not v["same_spec_as_full"] for v in per_seed.values())
        table[name] = {**agg, "specs_changed": changed}
        print(
            f"  {name:<28}{agg['passes']:>5}/{agg['seeds']:<2}{agg['mean_gain']:>+12.4f}"
            f"{agg['worst_gain']:>+10.4f}{changed:>15}"
        )
    return {"variants": table, "per_seed": out}


def print_aggregate(what: str, agg: dict[str, Any]) -> None:
    print(
        f"\n{agg['seeds']} seeds, {what}: issue 11's rule passed {agg['passes']}/{agg['seeds']} "
        f"(labels {agg['labels_pass']}, foreground {agg['foreground_pass']}); gain over the best "
        f"single model in mean foreground Dice: mean {agg['mean_gain']:+.4f}, "
        f"worst {agg['worst_gain']:+.4f}; every label >= 0.5: "
        + ", ".join(f"{c} {n}/{agg['seeds']}" for c, n in agg["learns_every_label"].items())
        + f"; 2d above 3d_fullres on RV: {agg['2d_beats_3d_on_RV']}/{agg['seeds']}"
    )


def markdown(report: dict[str, Any]) -> str:
    """The docs' tables: one per seed, the aggregate, and the ablation when run."""
    lines = []
    names = (*LABELS, "foreground mean")
    for seed in report["seeds"]:
        dice, verdict = report["records"][str(seed)]["dice"], report["verdicts"][str(seed)]
        lines += [f"| seed {seed} | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        rows = {m: dice[m] for m in (*CONFIGURATIONS, "ensemble (equal)", "ensemble (tuned)")}
        rows[f"{FINAL} (demo run)"] = dice[FINAL]
        if "final" in report:
            rows[f"{FINAL} (final tuner)"] = report["final"]["dice"][str(seed)]
            verdict = report["final"]["verdicts"][str(seed)]
        for method, row in rows.items():
            best = " (best single)" if method == verdict["best_single"] else ""
            cells = " | ".join(f"{row[n]:.4f}" for n in names)
            lines.append(f"| {method}{best} | {cells} |")
        lines += [
            "",
            f"Issue 11's rule: **{'pass' if verdict['passes'] else 'FAIL'}** (foreground "
            f"{verdict['foreground_gain']:+.4f} over {verdict['best_single']}); every label "
            ">= 0.5: "
            + ", ".join(
                f"{c} {'yes' if v else 'no'}" for c, v in verdict["learns_every_label"].items()
            )
            + f"; 2d above 3d_fullres on RV: {'yes' if verdict['2d_beats_3d_on_RV'] else 'no'}.",
            "",
        ]
    lines += [
        "| seed | label | CV estimate | hold-out estimate | test |",
        "|---|---|---|---|---|",
    ]
    for row in report["estimates"]["rows"]:
        lines.append(
            f"| {row['seed']} | {row['label']} | {row['cv']:+.4f} | {row['holdout']:+.4f} | "
            f"{row['test']:+.4f} |"
        )
    mae = report["estimates"]["mean_absolute_error"]
    lines += ["", f"Mean absolute error: CV {mae['CV']:.4f}, hold-out {mae['hold-out']:.4f}.", ""]
    if "ablation" in report:
        lines += [
            "| variant | passes | mean gain | worst gain | specs changed |",
            "|---|---|---|---|---|",
        ]
        for name, agg in report["ablation"]["variants"].items():
            lines.append(
                f"| {name} | {agg['passes']}/{agg['seeds']} | {agg['mean_gain']:+.4f} | "
                f"{agg['worst_gain']:+.4f} | {agg['specs_changed']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="folder of the demo runs")
    parser.add_argument("--draws", type=int, default=10, help="seeds to draw at random")
    parser.add_argument("--seeds", type=int, nargs="+", help="these seeds instead of drawing")
    parser.add_argument("--ablation", action="store_true", help="re-tune with each part switched")
    parser.add_argument("--json", type=Path, help="write everything measured here")
    parser.add_argument("--markdown", type=Path, help="write the docs' tables here")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    drawn = args.root / "seeds.txt"  # a draw is kept, so that an interrupted run goes on with it
    if args.seeds:
        seeds = list(args.seeds)
    elif drawn.is_file():
        seeds = [int(v) for v in drawn.read_text().split()]
        print(f"seeds drawn earlier ({drawn}):", end=" ")
    else:
        seeds = [random.SystemRandom().randrange(1, 2**31 - 1) for _ in range(args.draws)]
        drawn.write_text(" ".join(map(str, seeds)) + "\n")
    print("seeds:", " ".join(map(str, seeds)), flush=True)
    records, walls, verdicts = {}, {}, []
    for seed in seeds:
        records[seed], walls[seed] = run_seed(args.root, seed)
        verdict = judge(records[seed]["dice"])
        verdicts.append(verdict)
        print_seed(seed, records[seed]["dice"], verdict)
        sys.stdout.flush()
    agg = aggregate(verdicts)
    print_aggregate("the demo runs", agg)
    est = estimates(records)
    print(
        "estimates of the tuned ensemble's gain over equal weights against its test gain, mean "
        f"absolute error over seeds and labels: CV {est['mean_absolute_error']['CV']:.4f}, "
        f"hold-out {est['mean_absolute_error']['hold-out']:.4f}"
    )
    report: dict[str, Any] = {
        "seeds": seeds,
        "records": {str(s): records[s] for s in seeds},
        "walls_s": {str(s): walls[s] for s in seeds},
        "verdicts": {str(s): v for s, v in zip(seeds, verdicts, strict=True)},
        "aggregate": agg,
        "estimates": est,
    }
    if args.ablation:
        report["ablation"] = ablation(args.root, seeds, records)
        full = report["ablation"]["per_seed"]["full"]
        final_verdicts = [full[s]["verdict"] for s in seeds]
        report["final"] = {
            "tuner_version": tuner_version(),
            "dice": {str(s): full[s]["dice"] for s in seeds},
            "verdicts": {str(s): full[s]["verdict"] for s in seeds},
            "aggregate": aggregate(final_verdicts),
        }
        print_aggregate("the kept models re-tuned with this tuner", report["final"]["aggregate"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str, allow_nan=True) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
