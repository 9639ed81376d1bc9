"""Time `nnunet-ext tune` on region-based (sigmoid) CV folders (issue 28: <= 90 s on 2 cores).

Full size: 3 region models x 10 cases x 3 regions x 64x224x224 (BraTS-style nested regions,
the third best thresholded at 0.35). `--small`: 3 x 4 x 3 x 16x64x64. `--metric M`: decide on
M (`tune --metric`; the 90 s target is for Dice).
Usage: .venv/bin/python benchmarks/bench_tune_regions.py [--small] [--workers 2] [--keep DIR]
[--metric hd95]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from nnunet_ext.synthetic_regions import make_region_cv_folders
from nnunet_ext.tune import tune_regions
from nnunet_ext.tune.region_data import region_dataset

TARGET_S = 90.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", default=None, help="reuse/keep the data in this folder")
    parser.add_argument("--metric", default="dice", help="what tune decides on")
    args = parser.parse_args()
    cases, shape = (4, (16, 64, 64)) if args.small else (10, (64, 224, 224))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_regions_"))
    members = [root / f"model_{m}" for m in range(3)]
    if not (root / "reference").is_dir():
        t = time.perf_counter()
        make_region_cv_folders(root, num_models=3, num_cases=cases, shape=shape)
        print(f"data written in {time.perf_counter() - t:.1f} s under {root}")
    labels = region_dataset(members, root / "reference")
    assert labels is not None
    t = time.perf_counter()
    result = tune_regions(
        members, root / "reference", labels[0], num_workers=args.workers, metric=args.metric
    )
    total = time.perf_counter() - t
    size = f"3 models x {cases} cases x 3 regions x {'x'.join(map(str, shape))}"
    print(f"tune (regions, {args.metric}): {total:.1f} s for {size} ({args.workers} workers)")
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    print(f"  thresholds: {result.thresholds}")
    print(f"  equal-weight Dice: {[round(float(d), 4) for d in result.baselines['equal']]}")
    print(f"  tuned Dice:        {[round(float(d), 4) for d in result.dice]}")
    held = None if result.held_out is None else [round(float(d), 4) for d in result.held_out]
    print(f"  held-out Dice:     {held}")
    if result.metric_values is not None:
        for key, values in result.metric_values.items():
            print(f"  {args.metric} {key}: {[round(float(v), 3) for v in values]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of the main process: {peak:.0f} MiB")
    if args.metric == "dice":
        print(f"  target <= {TARGET_S:.0f} s: {'met' if total <= TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
