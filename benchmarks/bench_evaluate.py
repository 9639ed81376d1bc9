"""Time `nnunet_ext.evaluate.evaluate_folder` against nnU-Net's `compute_metrics_on_folder`.

Both run on the same synthetic label folders with the same number of worker processes.
Full size: 10 cases of 64x224x224 (labels 0-3, 5% of voxels flipped to a random label);
`--small`: 4 cases of 16x64x64. Data written once to `benchmarks/_data/evaluate_{full,small}`.
Usage: .venv/bin/python benchmarks/bench_evaluate.py [--small] [--workers 2] [--repeats 2]

With `--metrics dice hd95 assd nsd` (issue 15) it times instead, on predictions with realistic
boundary errors (a 1-2 voxel shift, boundary noise, a small false-positive blob; spacing
0.7 x 0.7 x 1.5 mm; written once to `benchmarks/_data/boundary_{full,small}`):
our Dice-only evaluation, ours with those metrics, and MONAI's functions
(`compute_hausdorff_distance(percentile=95)`, `compute_average_surface_distance(symmetric=True)`,
`compute_surface_dice`, on one-hot tensors of the same files read by the same reader) with the
same worker processes, alternating, and checks that the numbers agree.

With `--preset brats2026-glioma` (issue 26) it times `evaluate --preset` against the official
BraTS 2026 scorer, `brats-evaluate --config gli` + `brats-parse-metrics seg` (brats-evaluation
0.0.10, run from `.venv-oracles`, which `python3 run.py test` creates), on synthetic BraTS cases
of 155x240x240 (`--small`: 4 cases of 64x96x96), alternating, and checks that every per-case value
agrees. The official command line runs one case after another (it has no worker option): ours is
timed with one worker process (the same), and with `--workers`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813
from _common import add_executor_arguments

from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.synthetic import make_case


def _write_pair(
    root: Path, case: str, reference: np.ndarray, prediction: np.ndarray, spacing: tuple[float, ...]
) -> None:
    """Write ``root/ref/CASE.nii.gz`` and ``root/pred/CASE.nii.gz`` with ``spacing`` (x, y, z)."""
    for sub, array in (("ref", reference), ("pred", prediction)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        sitk.WriteImage(image, str(root / sub / f"{case}.nii.gz"), True)


def _write_data(root: Path, cases: int, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    for i in range(cases):
        _, labels = make_case(rng, shape=shape)
        pred = labels.copy()
        noise = rng.random(shape) < 0.05
        pred[noise] = rng.integers(0, 4, size=int(noise.sum()))
        _write_pair(root, f"c{i:02d}", labels, pred, (1.0, 1.0, 1.0))
    (root / "done").write_text("ok")


def _write_boundary_data(root: Path, cases: int, shape: tuple[int, int, int]) -> None:
    from scipy import ndimage

    rng = np.random.default_rng(1)
    for i in range(cases):
        _, labels = make_case(rng, shape=shape)
        pred = np.roll(labels, int(rng.integers(1, 3)), axis=int(rng.integers(1, 3)))
        edge = ndimage.morphological_gradient(pred, size=3) > 0
        flip = edge & (rng.random(shape) < 0.3)
        pred[flip] = ndimage.maximum_filter(pred, size=3)[flip]
        z, y, x = (int(rng.integers(n // 4, 3 * n // 4)) for n in shape)
        pred[z : z + 3, y : y + 4, x : x + 4] = 1 + i % 3  # a false-positive blob
        _write_pair(root, f"c{i:02d}", labels, pred, (0.7, 0.7, 1.5))
    (root / "done").write_text("ok")


def _monai_case(job: tuple[str, str, float]) -> list[list[float]]:
    """Worker: MONAI's HD95, ASSD, NSD and Dice of labels 1-3 of one case (top-level: spawn)."""
    import warnings

    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_dice,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    from nnunet_ext.io import read_labels

    reference = read_labels(job[0])
    prediction = read_labels(job[1]).array
    spacing = tuple(reversed(reference.spacing))
    labels = [1, 2, 3]
    y = torch.from_numpy(np.stack([reference.array == v for v in labels])[None].astype(np.float32))
    y_pred = torch.from_numpy(np.stack([prediction == v for v in labels])[None].astype(np.float32))
    common = {"include_background": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = [
            compute_dice(y_pred, y, **common),
            compute_hausdorff_distance(y_pred, y, percentile=95, spacing=spacing, **common),
            compute_average_surface_distance(y_pred, y, symmetric=True, spacing=spacing, **common),
            compute_surface_dice(y_pred, y, [job[2]] * 3, spacing=spacing, **common),
        ]
    return [v[0].tolist() for v in values]


def _boundary(args: argparse.Namespace) -> None:
    from nnunet_ext._parallel import map_cases

    cases, shape = (4, (16, 64, 64)) if args.small else (10, (64, 224, 224))
    root = Path(__file__).parent / "_data" / f"boundary_{'small' if args.small else 'full'}"
    if not (root / "done").is_file():
        _write_boundary_data(root, cases, shape)
    files = sorted((root / "ref").glob("*.nii.gz"))
    jobs = [(str(f), str(root / "pred" / f.name), args.nsd_tolerance) for f in files]
    dice_s, ours_s, monai_s = [], [], []
    for _ in range(args.repeats):  # alternate, so that load changes hit all alike
        t = time.perf_counter()
        evaluate_folder(root / "pred", root / "ref", labels=[1, 2, 3], num_workers=args.workers)
        dice_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = evaluate_folder(
            root / "pred",
            root / "ref",
            labels=[1, 2, 3],
            num_workers=args.workers,
            metrics=args.metrics,
            nsd_tolerance=args.nsd_tolerance,
        )
        ours_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs = map_cases(_monai_case, jobs, num_workers=args.workers, desc="monai")
        monai_s.append(time.perf_counter() - t)
    worst = {}
    for index, key in ((1, "hd95"), (2, "assd"), (3, "nsd")):
        if key in ours.metrics:
            worst[key] = max(
                abs(float(case.values[key][j]) - theirs[i][index][j])
                for i, case in enumerate(ours.cases)
                for j in range(3)
            )
    t_dice, t_ours, t_monai = (statistics.median(v) for v in (dice_s, ours_s, monai_s))
    print(
        f"{cases} cases of {'x'.join(map(str, shape))}, labels 1-3, spacing 1.5x0.7x0.7 mm, "
        f"{args.workers} worker process(es) each, median of {args.repeats}"
    )
    print(
        f"ours Dice only: {t_dice:.2f} s; ours --metrics {' '.join(args.metrics)}: {t_ours:.2f} s "
        f"({t_ours / t_dice:.2f}x Dice-only); MONAI: {t_monai:.2f} s "
        f"(ours {t_monai / t_ours:.1f}x faster); max |diff| vs MONAI "
        + ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
    )


def _official_brats(root: Path) -> tuple[float, dict[str, dict[str, str]]]:
    """Run brats-evaluate + brats-parse-metrics seg; seconds and the parsed rows by case."""
    import csv
    import subprocess
    import tempfile

    python = Path(__file__).resolve().parents[1] / ".venv-oracles" / "bin" / "python"
    with tempfile.TemporaryDirectory() as tmp:
        summary, table = Path(tmp) / "summary.json", Path(tmp) / "parsed.csv"
        t = time.perf_counter()
        for module, extra in (
            (
                "brats_evaluation.evaluation",
                [
                    "--config",
                    "gli",
                    "--ref_path",
                    str(root / "reference"),
                    "--pred_path",
                    str(root / "prediction"),
                    "--summary_json",
                    str(summary),
                ],
            ),
            (
                "brats_evaluation.metrics_parser",
                ["seg", "--json_path", str(summary), "--output_csv_path", str(table)],
            ),
        ):
            subprocess.run([str(python), "-m", module, *extra], check=True, capture_output=True)
        seconds = time.perf_counter() - t
        with table.open(newline="") as handle:
            rows = {r["subject_id"]: r for r in csv.DictReader(handle)}
    return seconds, rows


def _preset(args: argparse.Namespace) -> None:
    from nnunet_ext.evaluate import evaluate_preset
    from nnunet_ext.synthetic_brats import make_brats_cases

    cases, shape = (4, (64, 96, 96)) if args.small else (10, (155, 240, 240))
    root = Path(__file__).parent / "_data" / f"brats_{'small' if args.small else 'full'}"
    if not (root / "done").is_file():
        make_brats_cases(root, num_cases=cases, shape=shape, scale=2.0 if args.small else 5.0)
        (root / "done").write_text("ok")
    ours_1, ours_w, official = [], [], []
    for _ in range(args.repeats):  # alternate, so that load changes hit all alike
        t = time.perf_counter()
        ours = evaluate_preset(root / "prediction", root / "reference", args.preset)
        ours_1.append(time.perf_counter() - t)
        t = time.perf_counter()
        evaluate_preset(
            root / "prediction", root / "reference", args.preset, num_workers=args.workers
        )
        ours_w.append(time.perf_counter() - t)
        seconds, rows = _official_brats(root)
        official.append(seconds)
    worst = 0.0
    for case, row in zip(ours.cases, ours.rows, strict=True):
        for column, value in row.items():
            theirs = rows[f"{case}.nii.gz"][column]
            if theirs in ("", "inf") or not np.isfinite(value):
                assert (theirs == "") == bool(np.isnan(value)), (case, column)
                continue
            worst = max(worst, abs(float(theirs) - value))
    t1, tw, to = (statistics.median(v) for v in (ours_1, ours_w, official))
    print(
        f"{cases} BraTS cases of {'x'.join(map(str, shape))} (one without prediction), preset "
        f"{args.preset}, median of {args.repeats}"
    )
    print(
        f"official brats-evaluate + brats-parse-metrics (one process): {to:.2f} s; "
        f"ours, 1 worker: {t1:.2f} s ({to / t1:.1f}x faster); ours, {args.workers} workers: "
        f"{tw:.2f} s ({to / tw:.1f}x); max |diff| of every per-case value {worst:.1e}"
    )


def _executor(args: argparse.Namespace) -> Any:
    """The Ray executor, with Ray started (or joined) once for all repeats."""
    import ray

    from nnunet_ext._parallel import Executor

    if not ray.is_initialized():
        if args.ray_address:
            ray.init(address=args.ray_address)
        else:
            ray.init(include_dashboard=False)
    return Executor("ray")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--metrics", nargs="+", default=None)
    parser.add_argument("--nsd-tolerance", type=float, default=1.0)
    parser.add_argument("--preset", default=None, help="brats2026-glioma: against brats-evaluate")
    add_executor_arguments(parser)
    args = parser.parse_args()
    if args.preset:
        _preset(args)
        return
    if args.metrics:
        _boundary(args)
        return
    cases, shape = (4, (16, 64, 64)) if args.small else (10, (64, 224, 224))
    root = Path(__file__).parent / "_data" / f"evaluate_{'small' if args.small else 'full'}"
    if not (root / "done").is_file():
        _write_data(root, cases, shape)

    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    ours_s, theirs_s, ray_s = [], [], []
    for _ in range(args.repeats):  # alternate, so that load changes hit both alike
        t = time.perf_counter()
        ours = evaluate_folder(
            root / "pred", root / "ref", labels=[1, 2, 3], num_workers=args.workers
        )
        ours_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs = compute_metrics_on_folder(
            str(root / "ref"),
            str(root / "pred"),
            None,
            SimpleITKIO(),
            ".nii.gz",
            [1, 2, 3],
            None,
            args.workers,
        )
        theirs_s.append(time.perf_counter() - t)
        if args.executor == "ray":
            t = time.perf_counter()
            on_ray = evaluate_folder(
                root / "pred", root / "ref", labels=[1, 2, 3], executor=_executor(args)
            )
            ray_s.append(time.perf_counter() - t)
            assert repr(on_ray) == repr(ours), "Ray and local results differ"
    diff = max(abs(s.dice - theirs["mean"][s.label]["Dice"]) for s in ours.labels)
    t_ours, t_theirs = statistics.median(ours_s), statistics.median(theirs_s)
    print(
        f"{cases} cases of {'x'.join(map(str, shape))}, labels 1-3, {args.workers} worker "
        f"process(es) each, median of {args.repeats}"
    )
    print(
        f"nnunet_ext evaluate: {t_ours:.2f} s; "
        f"nnU-Net compute_metrics_on_folder: {t_theirs:.2f} s; "
        f"ratio ours/nnU-Net {t_ours / t_theirs:.2f}; max |dDice| {diff:.1e}"
    )
    if ray_s:
        t_ray = statistics.median(ray_s)
        print(
            f"nnunet_ext evaluate --executor ray: {t_ray:.2f} s (Ray started once before; "
            f"one task per case); Ray/local {t_ray / t_ours:.2f}; same results"
        )


if __name__ == "__main__":
    main()
