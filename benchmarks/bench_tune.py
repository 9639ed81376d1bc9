"""Time `nnunet-ext tune` on synthetic CV folders (issue target: <= 60 s for the full size).

Full size: 3 models x 10 cases x 4 classes x 64x224x224. `--small`: 3 x 4 x 4 x 16x64x64.
Usage: .venv/bin/python benchmarks/bench_tune.py [--small] [--workers 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from nnunet_ext.synthetic import make_cv_folders
from nnunet_ext.tune import tune_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", default=None, help="reuse/keep the data in this folder")
    args = parser.parse_args()
    cases, shape = (4, (16, 64, 64)) if args.small else (10, (64, 224, 224))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_tune_"))
    if not (root / "gt_segmentations").is_dir():
        t = time.perf_counter()
        make_cv_folders(root, good_labels=((1,), (2,), (3,)), num_cases=cases, shape=shape)
        print(f"data written in {time.perf_counter() - t:.1f} s under {root}")
    dirs = [root / f"model_{m}" / "validation" for m in range(3)]
    t = time.perf_counter()
    result = tune_weights(dirs, root / "gt_segmentations", num_workers=args.workers)
    total = time.perf_counter() - t
    size = f"3 models x {cases} cases x 4 classes x {'x'.join(map(str, shape))}"
    print(f"tune: {total:.1f} s for {size} ({args.workers} workers)")
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    print(f"  in-sample gain per label: {[round(float(g), 4) for g in result.in_sample_gain]}")
    held = None if result.cv_gain is None else [round(float(g), 4) for g in result.cv_gain]
    print(f"  held-out gain per label: {held}")
    floors = np.nanmax(np.stack(list(result.baselines.values())), axis=0)
    print(f"  tuned Dice per label: {[round(float(d), 4) for d in result.dice]}")
    print(f"  rules: {getattr(result, 'rules', None)}")
    print(f"  tuned minus best baseline: {[round(float(d), 4) for d in result.dice - floors]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of the main process: {peak:.0f} MiB")
    print(f"  target <= 60 s: {'met' if total <= 60 else 'MISSED'} (ratio {total / 60:.2f})")


if __name__ == "__main__":
    main()
