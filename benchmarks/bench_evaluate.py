"""Time `nnunet_ext.evaluate.evaluate_folder` against nnU-Net's `compute_metrics_on_folder`.

Both run on the same synthetic label folders (one process each). Usage:
.venv/bin/python benchmarks/bench_evaluate.py [--small]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.synthetic import make_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    cases, shape = (4, (16, 64, 64)) if args.small else (10, (64, 224, 224))
    root = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    rng = np.random.default_rng(0)
    for sub in ("ref", "pred"):
        (root / sub).mkdir()
    for i in range(cases):
        _, labels = make_case(rng, shape=shape)
        pred = labels.copy()
        noise = rng.random(shape) < 0.05
        pred[noise] = rng.integers(0, 4, size=int(noise.sum()))
        for sub, array in (("ref", labels), ("pred", pred)):
            sitk.WriteImage(
                sitk.GetImageFromArray(array), str(root / sub / f"c{i:02d}.nii.gz"), True
            )
    t = time.perf_counter()
    ours = evaluate_folder(root / "pred", root / "ref", labels=[1, 2, 3])
    t_ours = time.perf_counter() - t

    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    t = time.perf_counter()
    theirs = compute_metrics_on_folder(
        str(root / "ref"), str(root / "pred"), None, SimpleITKIO(), ".nii.gz", [1, 2, 3], None, 1
    )
    t_theirs = time.perf_counter() - t
    diff = max(abs(s.dice - theirs["mean"][s.label]["Dice"]) for s in ours.labels)
    print(f"{cases} cases of {'x'.join(map(str, shape))}, labels 1-3, 1 process each")
    print(
        f"nnunet_ext evaluate: {t_ours:.2f} s; nnU-Net compute_metrics_on_folder: {t_theirs:.2f} s "
        f"(incl. spawn-pool start); ratio {t_theirs / t_ours:.2f}x; max |dDice| {diff:.1e}"
    )


if __name__ == "__main__":
    main()
