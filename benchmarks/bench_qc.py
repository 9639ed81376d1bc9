"""How well `--qc` flags the demo's bad test cases, and what it costs (issue 29, acceptance 1-2).

Usage: .venv/bin/python benchmarks/bench_qc.py [--draws /work/draws25] [--repeats R]
       [--predict-cases N] [--json results.json]

For every complete demo run ``DRAWS/seed_*`` (an ``nnunet-ext demo`` folder with its
``demo_summary.json``, which the demo writes last), it fuses the two
members' test probabilities (``predictions/2d``, ``predictions/3d_fullres``) with the tuned spec
(``tuning/ensemble_spec.json``) and ``--qc`` into a temporary folder, reads ``qc.json`` and
computes each case's and label's true Dice against ``labelsTs``. Over all seeds together it
reports:

* the AUROC of the flag (flagged = 1) for "the fused label's true Dice is below 0.5", and the
  AUROC of the score ``1 - estimated Dice``;
* the Spearman correlation of the estimated and the true Dice (scipy), and of the soft Dice;
* whether every case-label where a member is empty while another is not is flagged;
* all of that with the default thresholds and with thresholds calibrated on the seed's CV cases
  (``tune --qc-calibrate``'s calibration on the seed's spec);
* the overhead: ``ensemble --spec`` wall time with and without ``--qc`` on the first seed,
  alternated, best of ``--repeats``; with ``--predict-cases N``, ``predict --spec
  tuning/predict_spec.json --disable-tta --device cpu`` on the first seed's first N test images
  likewise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BIN = Path(sys.executable).parent
DATASET = "Dataset501_SyntheticHeart"


def complete_seeds(draws: Path) -> list[Path]:
    """The finished seed folders (``demo_summary.json`` written) with what the QC needs."""
    seeds = []
    for folder in sorted(draws.glob("seed_*")):
        needed = [
            folder / "demo_summary.json",
            folder / "predictions" / "2d",
            folder / "predictions" / "3d_fullres",
            folder / "tuning" / "ensemble_spec.json",
            folder / "nnUNet_raw" / DATASET / "labelsTs",
        ]
        if all(p.exists() for p in needed) and list((folder / "predictions" / "2d").glob("*.npz")):
            seeds.append(folder)
    return seeds


def ensemble_command(seed: Path, out: Path, qc: bool, spec: Path | None = None) -> list[str]:
    """``nnunet-ext ensemble`` of the seed's test probabilities with its tuned spec."""
    members = [str(seed / "predictions" / c) for c in ("2d", "3d_fullres")]
    command = [str(BIN / "nnunet-ext"), "ensemble", "-i", *members]
    command += ["--spec", str(spec or seed / "tuning" / "ensemble_spec.json"), "-o", str(out)]
    return [*command, "--qc"] if qc else command


def calibrated_spec(seed: Path, work: Path) -> Path:
    """The seed's spec with QC thresholds calibrated on its CV cases (tune --qc-calibrate)."""
    from nnunet_ext.ensemble import EnsembleSpec
    from nnunet_ext.tune.qc_calibration import calibrate_qc

    spec_file = seed / "tuning" / "ensemble_spec.json"
    references = seed / "nnUNet_preprocessed" / DATASET / "gt_segmentations"
    thresholds = calibrate_qc(spec_file, references)
    spec = EnsembleSpec.load(spec_file)
    out = work / f"{seed.name}_calibrated_spec.json"
    EnsembleSpec(spec.members, spec.rules, thresholds).save(out)
    return out


def true_dice(prediction: Path, reference: Path, label: int) -> float:
    """Dice of one label (both empty: 1), read with SimpleITK."""
    import SimpleITK as sitk  # noqa: N813

    a = sitk.GetArrayFromImage(sitk.ReadImage(str(prediction))) == label
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(reference))) == label
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN without both classes."""
    pos, neg = scores[positives], scores[~positives]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def seed_rows(seed: Path, work: Path, spec: Path | None = None) -> list[dict[str, Any]]:
    """One row per test case and label: flag, estimate, true Dice, empty members."""
    out = work / f"{seed.name}_{'calibrated' if spec else 'default'}"
    command = ensemble_command(seed, out, qc=True, spec=spec)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((out / "qc.json").read_text())
    references = seed / "nnUNet_raw" / DATASET / "labelsTs"
    rows = []
    for case in report["cases"]:
        for label in case["labels"]:
            rows.append(
                {
                    "seed": seed.name,
                    "case": case["case"],
                    "label": label["name"],
                    "flagged": bool(label["reasons"]),
                    "reasons": label["reasons"],
                    "estimated": label["estimated_dice"],
                    "soft": label["soft_dice"],
                    "empty_members": label["empty_members"],
                    "true": true_dice(
                        out / f"{case['case']}.nii.gz",
                        references / f"{case['case']}.nii.gz",
                        label["label"],
                    ),
                }
            )
    return rows


def overhead(seed: Path, work: Path, repeats: int) -> dict[str, float]:
    """Best wall time of ``ensemble`` without and with ``--qc``, alternated."""
    times: dict[str, list[float]] = {"plain": [], "qc": []}
    for repeat in range(repeats):
        for kind in ("plain", "qc"):
            out = work / f"overhead_{kind}_{repeat}"
            start = time.perf_counter()
            subprocess.run(
                ensemble_command(seed, out, qc=kind == "qc"), check=True, stdout=subprocess.DEVNULL
            )
            times[kind].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    return {**best, "ratio": best["qc"] / best["plain"]}


def predict_overhead(seed: Path, work: Path, repeats: int, cases: int) -> dict[str, float]:
    """Best wall time of ``predict`` without and with ``--qc`` on ``cases`` test images."""
    import shutil

    images = work / "predict_images"
    images.mkdir(exist_ok=True)
    for image in sorted((seed / "nnUNet_raw" / DATASET / "imagesTs").glob("*_0000.nii.gz"))[:cases]:
        shutil.copyfile(image, images / image.name)
    spec = seed / "tuning" / "predict_spec.json"
    times: dict[str, list[float]] = {"plain": [], "qc": []}
    for repeat in range(repeats):
        for kind in ("plain", "qc"):
            command = [str(BIN / "nnunet-ext"), "predict", "-i", str(images)]
            command += ["-o", str(work / f"predict_{kind}_{repeat}"), "--spec", str(spec)]
            command += ["--disable-tta", "--device", "cpu", *(["--qc"] if kind == "qc" else [])]
            start = time.perf_counter()
            subprocess.run(
                command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            times[kind].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    return {**best, "ratio": best["qc"] / best["plain"], "cases": cases}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """AUROC of the flag and of the risk, Spearman, and the empty-member check."""
    from scipy.stats import spearmanr

    flagged = np.array([r["flagged"] for r in rows], dtype=float)
    estimated = np.array([r["estimated"] for r in rows], dtype=float)
    truth = np.array([r["true"] for r in rows], dtype=float)
    bad = truth < 0.5
    empty = [r for r in rows if r["empty_members"]]
    return {
        "case_labels": len(rows),
        "true_dice_below_0.5": int(bad.sum()),
        "flagged": int(flagged.sum()),
        "auroc_flag": auroc(flagged, bad),
        "auroc_one_minus_estimated_dice": auroc(1.0 - estimated, bad),
        "spearman_estimated_vs_true": float(spearmanr(estimated, truth).statistic),
        "spearman_soft_dice_vs_true": float(spearmanr([r["soft"] for r in rows], truth).statistic),
        "empty_member_case_labels": len(empty),
        "empty_member_all_flagged": all(r["flagged"] for r in empty),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=Path, default=Path("/work/draws25"))
    parser.add_argument("--repeats", type=int, default=3, help="overhead runs per variant")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--predict-cases", type=int, default=0, help="time predict with/without --qc on N cases"
    )
    args = parser.parse_args()
    seeds = complete_seeds(args.draws)
    if not seeds:
        print(f"no complete demo run under {args.draws}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [row for seed in seeds for row in seed_rows(seed, work)]
        result = {"seeds": [s.name for s in seeds], "default": summarise(rows)}
        calibrated = [
            row for seed in seeds for row in seed_rows(seed, work, calibrated_spec(seed, work))
        ]
        result["calibrated_on_cv"] = summarise(calibrated)
        if args.repeats > 0:
            result["overhead_ensemble"] = overhead(seeds[0], work, args.repeats)
        if args.repeats > 0 and args.predict_cases > 0:
            result["overhead_predict"] = predict_overhead(
                seeds[0], work, args.repeats, args.predict_cases
            )
    for row in calibrated:
        if row["flagged"] or row["true"] < 0.5:
            print(
                f"{row['seed']} {row['case']} {row['label']}: true {row['true']:.2f} "
                f"estimated {row['estimated']:.2f} flag: {'; '.join(row['reasons']) or '-'}"
            )
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(
            json.dumps({**result, "rows": rows, "calibrated_rows": calibrated}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
