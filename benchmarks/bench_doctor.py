"""Time `nnunet-ext doctor --skip-env` on a raw dataset of N cases plus N preprocessed .npz files.

nnU-Net has no equivalent check, so this reports absolute times for -j 1 and -j 2 (every file is
read to the end: images, labels and archives).

    .venv/bin/python benchmarks/bench_doctor.py [N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nnunet_ext.synthetic import make_raw_dataset

DATA = Path(__file__).resolve().parent / "_data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", type=int, nargs="?", default=200)
    args = parser.parse_args()
    root = DATA / f"doctor_{args.cases}"
    if not root.exists():
        raw, pre, res = root / "raw", root / "preprocessed", root / "results"
        for folder in (raw, pre, res):
            folder.mkdir(parents=True)
        dataset = make_raw_dataset(raw, num_training=args.cases, num_test=0, shape=(16, 48, 48))
        conf = pre / dataset.name / "nnUNetPlans_3d_fullres"
        conf.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(args.cases):
            data = rng.random((1, 16, 48, 48), dtype=np.float32)
            np.savez_compressed(conf / f"heart_{i:03d}.npz", data=data)
    env = dict(
        os.environ,
        nnUNet_raw=str(root / "raw"),
        nnUNet_preprocessed=str(root / "preprocessed"),
        nnUNet_results=str(root / "results"),
    )
    exe = [sys.executable, "-m", "nnunet_ext", "doctor", "--skip-env"]
    for workers in (1, 2):
        start = time.perf_counter()
        result = subprocess.run(
            [*exe, "-j", str(workers)], env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - start
        last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        print(f"{args.cases} cases, -j {workers}: {seconds:.2f} s ({result.returncode=}; {last})")


if __name__ == "__main__":
    main()
