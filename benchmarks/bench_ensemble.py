"""Benchmark `nnunet-ext ensemble` against `nnUNetv2_ensemble` on nnU-Net-like prediction folders.

Usage: .venv/bin/python benchmarks/bench_ensemble.py [--small] [--workers N] [--repeats R]
       [--executor ray [--ray-address auto|HOST:PORT]]

Generates (once, cached under benchmarks/_data/) M prediction folders of smooth softmax
probabilities (CASE.npz float32 + CASE.pkl + label files, dataset.json, plans.json), then runs both
tools alternately at the same worker count and reports wall time and peak memory (largest process
RSS, from getrusage(RUSAGE_CHILDREN) of a wrapper per run, which covers pool workers) and the
ratios.
It also checks that both wrote identical label maps. With ``--executor ray`` a third contender,
``ours_ray`` (the same command with ``--executor ray``: one Ray task per case; a local Ray is
started per run unless ``--ray-address`` names a running one), runs in the same rotation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import add_executor_arguments

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data"
BIN = Path(sys.executable).parent
SIZES = {
    "full": {"cases": 8, "members": 3, "classes": 4, "shape": (64, 224, 224)},
    "small": {"cases": 4, "members": 3, "classes": 4, "shape": (32, 112, 112)},
}
WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "wall = time.perf_counter() - t\n"
    "print(rc, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def smooth_probabilities(
    rng: np.random.Generator, classes: int, shape: tuple[int, ...]
) -> np.ndarray:
    """Softmax of smooth random logits: large confident regions, soft borders (like nnU-Net)."""
    from scipy import ndimage

    coarse = tuple(max(2, s // 8) for s in shape)
    logits = np.stack(
        [
            ndimage.zoom(
                rng.normal(0.0, 6.0, coarse).astype(np.float32),
                [s / c for s, c in zip(shape, coarse, strict=True)],
                order=1,
            )
            for _ in range(classes)
        ]
    )
    logits -= logits.max(axis=0, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=0, keepdims=True)
    return logits.astype(np.float32)


def make_data(size: str) -> list[Path]:
    from nnunet_ext.synthetic import write_prediction_folder

    cfg = SIZES[size]
    base = DATA / f"ensemble_{size}"
    folders = [base / f"model_{m}" for m in range(cfg["members"])]
    marker = base / "complete"
    if marker.is_file():
        return folders
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for folder in folders:
        probs = {
            f"case_{i:03d}": smooth_probabilities(rng, cfg["classes"], cfg["shape"])
            for i in range(cfg["cases"])
        }
        write_prediction_folder(folder, probs)
    marker.write_text("ok\n")
    print(f"generated {size} data in {time.perf_counter() - t:.0f} s: {base}", file=sys.stderr)
    return folders


def measure(command: list[str]) -> tuple[float, int]:
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, check=True
    )
    rc, wall, rss_kib = result.stdout.split()
    if rc != "0":
        raise SystemExit(f"command failed ({rc}): {' '.join(command)}")
    return float(wall), int(rss_kib) * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="4 cases x 3 models x 4 x 32x112x112")
    parser.add_argument("--workers", type=int, default=2, help="-j / -np for both tools")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each tool (alternating)")
    add_executor_arguments(parser)
    args = parser.parse_args()
    size = "small" if args.small else "full"
    folders = make_data(size)
    out = DATA / f"ensemble_{size}_out"
    ours_cmd = [
        str(BIN / "python"),
        "-m",
        "nnunet_ext.ensemble",
        "-i",
        *map(str, folders),
        "-o",
        str(out / "ours"),
        "-j",
        str(args.workers),
        "--overwrite",
    ]
    ref_cmd = [
        str(BIN / "nnUNetv2_ensemble"),
        "-i",
        *map(str, folders),
        "-o",
        str(out / "nnunet"),
        "-np",
        str(args.workers),
    ]
    commands = {"nnunet": ref_cmd, "ours": ours_cmd}
    if args.executor == "ray":
        address = ["--ray-address", args.ray_address] if args.ray_address else []
        commands["ours_ray"] = [
            *ours_cmd[: ours_cmd.index("-o") + 1],
            str(out / "ours_ray"),
            *ours_cmd[ours_cmd.index("-o") + 2 :],
            "--executor",
            "ray",
            *address,
        ]
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[int]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            wall, peak = measure(command)
            times[name].append(wall)
            peaks[name].append(peak)
            print(
                f"{name:7s} wall {wall:6.2f} s  peak RSS {peak / 2**20:7.1f} MiB", file=sys.stderr
            )

    from nnunet_ext.io import read_labels

    for label_file in sorted((out / "nnunet").glob("*.nii.gz")):
        a = read_labels(label_file)
        for name in list(commands)[1:]:
            b = read_labels(out / name / label_file.name)
            if not (np.array_equal(a.array, b.array) and a.geometry() == b.geometry()):
                raise SystemExit(f"outputs differ for {label_file.name} ({name})")
    cfg = SIZES[size]
    report = {
        "size": f"{cfg['cases']} cases x {cfg['members']} models x {cfg['classes']} classes x "
        + "x".join(map(str, cfg["shape"])),
        "workers": args.workers,
        "repeats": args.repeats,
        "nnunet_wall_s": statistics.median(times["nnunet"]),
        "ours_wall_s": statistics.median(times["ours"]),
        "nnunet_peak_rss_mib": max(peaks["nnunet"]) / 2**20,
        "ours_peak_rss_mib": max(peaks["ours"]) / 2**20,
        "labels_identical": True,
    }
    report["wall_ratio"] = report["ours_wall_s"] / report["nnunet_wall_s"]
    report["memory_ratio"] = report["ours_peak_rss_mib"] / report["nnunet_peak_rss_mib"]
    if "ours_ray" in commands:
        report["ours_ray_wall_s"] = statistics.median(times["ours_ray"])
        report["ray_vs_local_wall_ratio"] = report["ours_ray_wall_s"] / report["ours_wall_s"]
    report["load_average"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
