"""Time `nnunet-ext compare`'s statistics: 50 cases x 3 labels x 4 metrics x 2000 resamples.

Writes two evaluation files with the real `evaluate` API (Dice, IoU, HD95 and ASSD of 50
synthetic cases, the second with a small per-case shift of its Dice), then times
`nnunet_ext.compare.compare_evaluations` on them (reading, checking, the paired bootstrap of
every label and metric, the verdicts), and, for three versions, the ranks as well. nnU-Net has
no equivalent; the ratio printed is time / 2 s (the target on 2 cores).

    .venv/bin/python benchmarks/bench_compare.py [--repeats 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from nnunet_ext.compare import compare_evaluations
from nnunet_ext.evaluate import evaluate_folder, load_evaluation, write_evaluation
from nnunet_ext.synthetic import make_case, write_dataset_json

CASES = 50
SHAPE = (8, 32, 32)
TARGET_S = 2.0


def _write_label(path: Path, array: np.ndarray) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(path), True)


def write_evaluations(root: Path, count: int) -> list[Path]:
    """``count`` evaluation files of 50 cases, 3 labels and 4 metrics (Dice IoU HD95 ASSD)."""
    rng = np.random.default_rng(0)
    ref, pred = root / "ref", root / "pred"
    ref.mkdir(parents=True, exist_ok=True)
    pred.mkdir(exist_ok=True)
    for i in range(CASES):
        _, labels = make_case(rng, shape=SHAPE)
        _write_label(ref / f"case_{i:03d}.nii.gz", labels)
        flip = rng.random(SHAPE) < 0.05
        labels[flip] = rng.integers(0, 4, size=int(flip.sum()))
        _write_label(pred / f"case_{i:03d}.nii.gz", labels)
    write_dataset_json(ref, {"background": 0, "myocardium": 1, "LV": 2, "RV": 3}, CASES)
    base = evaluate_folder(
        pred, ref, metrics=("dice", "iou", "hd95", "assd"), dataset_json=ref / "dataset.json"
    )
    files = []
    for k in range(count):
        shift = rng.normal(0.003 * k, 0.01, size=(CASES, 3))
        cases = [
            dataclasses.replace(c, dice=c.dice + s) for c, s in zip(base.cases, shift, strict=True)
        ]
        path, _ = write_evaluation(dataclasses.replace(base, cases=cases), root / f"v{k}.json")
        files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the evaluations here (and reuse them)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        files = sorted(root.glob("v*.json")) if args.keep else []
        if len(files) < 3:
            files = write_evaluations(root, 3)
        shape = load_evaluation(files[0])
        print(
            f"{len(shape.cases)} cases x {len(shape.labels)} labels x "
            f"{len(shape.value_keys) + 2} metrics x 2000 resamples"
        )
        for count in (2, 3):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                compare_evaluations(files[:count])
                times.append(time.perf_counter() - start)
            best, median = min(times), float(np.median(times))
            print(
                f"{count} versions: best {best:.3f} s, median {median:.3f} s over "
                f"{args.repeats} runs; ratio {median / TARGET_S:.2f} (target <= 1)"
            )


if __name__ == "__main__":
    main()
