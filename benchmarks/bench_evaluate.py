"""Time `nnunet_ext.evaluate.evaluate_folder` against nnU-Net's `compute_metrics_on_folder`.

Both run on the same synthetic label folders with the same number of worker processes.
Full size: 10 cases of 64x224x224 (labels 0-3, 5% of voxels flipped to a random label);
`--small`: 4 cases of 16x64x64. Data written once to `benchmarks/_data/evaluate_{full,small}`.
Usage: .venv/bin/python benchmarks/bench_evaluate.py [--small] [--workers 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.synthetic import make_case


def _write_data(root: Path, cases: int, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    for sub in ("ref", "pred"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(cases):
        _, labels = make_case(rng, shape=shape)
        pred = labels.copy()
        noise = rng.random(shape) < 0.05
        pred[noise] = rng.integers(0, 4, size=int(noise.sum()))
        for sub, array in (("ref", labels), ("pred", pred)):
            sitk.WriteImage(
                sitk.GetImageFromArray(array), str(root / sub / f"c{i:02d}.nii.gz"), True
            )
    (root / "done").write_text("ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cases, shape = (4, (16, 64, 64)) if args.small else (10, (64, 224, 224))
    root = Path(__file__).parent / "_data" / f"evaluate_{'small' if args.small else 'full'}"
    if not (root / "done").is_file():
        _write_data(root, cases, shape)

    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    ours_s, theirs_s = [], []
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


if __name__ == "__main__":
    main()
