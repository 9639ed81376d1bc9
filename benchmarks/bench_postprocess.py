"""Time `postprocess_folder` against nnU-Net's `apply_postprocessing_to_folder`.

Both keep the largest component of labels 1, 2 and 3 (nnU-Net: one
`remove_all_but_largest_component_from_segmentation` call per label) on the same folder of noisy
synthetic label maps, with the same number of worker processes, and the outputs are compared
voxel by voxel. Usage:

    .venv/bin/python benchmarks/bench_postprocess.py [--small] [--workers N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813
from _common import add_executor_arguments

from nnunet_ext.postprocess import PostprocessingPlan, postprocess_folder
from nnunet_ext.synthetic import DEFAULT_LABELS, make_case, minimal_plans


def make_inputs(folder: Path, cases: int, shape: tuple[int, int, int], seed: int = 0) -> None:
    """Cardiac-like label maps with 0.5% of voxels flipped to a random label (many specks)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for index in range(cases):
        _, labels = make_case(rng, shape=shape)
        noise = rng.random(shape) < 0.005
        labels[noise] = rng.integers(1, 4, size=int(noise.sum()))
        image = sitk.GetImageFromArray(labels)
        image.SetSpacing((0.9, 0.9, 2.5))
        image.SetOrigin((-100.0, 20.5, 3.0))
        sitk.WriteImage(image, str(folder / f"case_{index:03d}.nii.gz"), True)
    (folder / "dataset.json").write_text(
        json.dumps(
            {
                "labels": DEFAULT_LABELS,
                "file_ending": ".nii.gz",
                "channel_names": {"0": "MRI"},
                "numTraining": cases,
            }
        )
    )
    (folder / "plans.json").write_text(json.dumps(minimal_plans()))


def run_nnunet(source: Path, target: Path, workers: int) -> float:
    from nnunetv2.postprocessing.remove_connected_components import (
        apply_postprocessing_to_folder,
        remove_all_but_largest_component_from_segmentation,
    )

    start = time.perf_counter()
    apply_postprocessing_to_folder(
        str(source),
        str(target),
        [remove_all_but_largest_component_from_segmentation] * 3,
        [{"labels_or_regions": label} for label in (1, 2, 3)],
        num_processes=workers,
    )
    return time.perf_counter() - start


def run_ours(source: Path, target: Path, workers: int, executor: Any = None) -> float:
    start = time.perf_counter()
    postprocess_folder(
        source,
        target,
        plan=PostprocessingPlan(keep_largest=(1, 2, 3)),
        num_workers=workers,
        executor=executor,
    )
    return time.perf_counter() - start


def compare(ours: Path, theirs: Path) -> tuple[int, int, float]:
    """Return (cases compared, cases with identical labels, largest geometry difference)."""
    same, geometry, files = 0, 0.0, sorted(theirs.glob("*.nii.gz"))
    for file in files:
        a, b = sitk.ReadImage(str(ours / file.name)), sitk.ReadImage(str(file))
        assert a.GetPixelID() == sitk.sitkUInt8, f"{file.name}: ours is not uint8"
        same += bool(np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b)))
        for key in ("GetSpacing", "GetOrigin", "GetDirection"):
            diff = np.abs(np.subtract(getattr(a, key)(), getattr(b, key)()))
            geometry = max(geometry, float(diff.max()))
    return len(files), same, geometry


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--small", action="store_true", help="4 cases of 16x64x64 instead of 10 of 64x224x224"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes for both tools")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data in this folder")
    add_executor_arguments(parser)
    args = parser.parse_args()
    cases, shape = (4, (16, 64, 64)) if args.small else (10, (64, 224, 224))
    root = Path(tempfile.mkdtemp(prefix="bench_pp_")) if args.keep is None else args.keep
    try:
        make_inputs(root / "in", cases, shape)
        t_theirs = run_nnunet(root / "in", root / "nnunet", args.workers)
        t_ours = run_ours(root / "in", root / "ours", args.workers)
        compared, same, geometry = compare(root / "ours", root / "nnunet")
        print(
            f"{cases} cases of {'x'.join(map(str, shape))} (z,y,x), keep largest of labels 1 2 3, "
            f"{args.workers} worker(s) each"
        )
        print(
            f"nnU-Net apply_postprocessing_to_folder: {t_theirs:.2f} s (incl. its spawn pool start)"
        )
        print(f"nnunet_ext postprocess_folder:          {t_ours:.2f} s")
        print(
            f"ratio ours/nnU-Net: {t_ours / t_theirs:.3f} (target <= 0.25); identical labels in "
            f"{same}/{compared} cases; largest geometry difference {geometry:.1e}"
        )
        if args.executor == "ray":
            import ray

            from nnunet_ext._parallel import Executor

            start = time.perf_counter()
            ray.init(
                address=args.ray_address, include_dashboard=None if args.ray_address else False
            )
            started = time.perf_counter() - start
            t_ray = run_ours(root / "in", root / "ours_ray", args.workers, Executor("ray"))
            compared, same, _ = compare(root / "ours_ray", root / "ours")
            print(
                f"nnunet_ext postprocess_folder on Ray: {t_ray:.2f} s (+ {started:.1f} s to "
                f"start Ray); Ray/local {t_ray / t_ours:.2f}; identical to local in "
                f"{same}/{compared} cases"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
