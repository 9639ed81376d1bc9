"""Time `postprocess determine` with the component rules; check it on demo CV outputs.

Timing (issue 27: <= 60 s for 10 cases x 3 labels x 64x224x224 with 2 workers): references from
`nnunet_ext.synthetic.make_case`, predictions with 0.5% of voxels flipped to a random label (many
small components of every label) and a few islands of label 3 inside label 1; with
`--probabilities` also a `CASE.npz` per case (4 classes, float32) for `min_probability`.
It times `determine_plan` with the component rules alone (the existing steps off) and prints the
rules kept, and the cost of applying a plan in the pass (`write_through_plan` against a plain
label write of one case).

Demo check (acceptance 2): `--demo DIR [DIR ...]` runs on each `nnunet-ext demo` output folder
(`cross_validation/ensemble_tuned` with its `.npz`, references in
`nnUNet_preprocessed/Dataset501_SyntheticHeart/gt_segmentations`) `determine` with every rule, and
a 5-fold check of the whole procedure: the plan determined on the other folds, applied to each
fold's cases; it prints each label's held-out Dice change (target: none below -0.002), with the
other steps judged held-out (the default with component rules) and in-sample (nnU-Net's rule),
and the rules kept with their held-out gain and noise. Usage:

    .venv/bin/python benchmarks/bench_components.py [--small] [--workers 2] [--probabilities]
        [--keep DIR]
    .venv/bin/python benchmarks/bench_components.py --demo /tmp/draws/seed_*
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from nnunet_ext.io import read_labels
from nnunet_ext.postprocess import PostprocessingPlan, apply_plan, determine_plan
from nnunet_ext.postprocess.component_search import RULES
from nnunet_ext.postprocess.heldout import fold_ids
from nnunet_ext.postprocess.in_pass import write_through_plan
from nnunet_ext.postprocess.objective import Objective
from nnunet_ext.synthetic import DEFAULT_LABELS, make_case

ONLY_COMPONENTS = {
    "try_keep_largest_foreground": False,
    "try_keep_largest": False,
    "try_fill_holes": False,
}


def make_inputs(root: Path, cases: int, shape: tuple[int, int, int], probabilities: bool) -> None:
    """References, noisy predictions (and their probabilities) under ``root/{ref,pred}``."""
    rng = np.random.default_rng(0)
    (root / "ref").mkdir(parents=True)
    (root / "pred").mkdir()
    for index in range(cases):
        _, reference = make_case(rng, shape=shape)
        prediction = reference.copy()
        noise = rng.random(shape) < 0.005
        prediction[noise] = rng.integers(0, 4, size=int(noise.sum()))
        inside = np.argwhere(reference == 1)
        for z, y, x in inside[rng.choice(len(inside), size=6, replace=False)]:
            prediction[z : z + 2, y : y + 2, x : x + 2] = 3
        for array, folder in ((reference, "ref"), (prediction, "pred")):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((0.9, 0.9, 2.5))
            sitk.WriteImage(image, str(root / folder / f"case_{index:03d}.nii.gz"), True)
        if probabilities:
            values = rng.uniform(0.0, 0.2, size=(4, *shape)).astype(np.float32)
            np.put_along_axis(values, prediction[None].astype(np.int64), 0.7, axis=0)
            values /= values.sum(axis=0, keepdims=True)
            np.savez_compressed(root / "pred" / f"case_{index:03d}.npz", probabilities=values)
    dataset = {"labels": DEFAULT_LABELS, "file_ending": ".nii.gz", "channel_names": {"0": "MRI"}}
    (root / "pred" / "dataset.json").write_text(json.dumps({**dataset, "numTraining": cases}))


def time_determine(root: Path, workers: int, probabilities: bool) -> None:
    rules = RULES if probabilities else tuple(r for r in RULES if r != "min_probability")
    start = time.perf_counter()
    plan = determine_plan(
        root / "pred",
        root / "ref",
        component_rules=rules,
        probabilities_dir=root / "pred" if probabilities else None,
        num_workers=workers,
        **ONLY_COMPONENTS,
    )
    seconds = time.perf_counter() - start
    tried = sum(len(c["thresholds"]) for c in plan.metrics["candidates"])
    print(
        f"determine, rules {' '.join(rules)}: {seconds:.1f} s (target <= 60 s; ratio "
        f"{seconds / 60:.2f}); {len(plan.metrics['candidates'])} rule/label pairs, {tried} "
        "candidate thresholds"
    )
    for step in plan.steps:
        print(f"  kept: {step.describe()}")
    case = sorted((root / "pred").glob("*.nii.gz"))[0]
    image = read_labels(case)
    writer = _plain_writer(image)
    npz = case.with_name(case.name.replace(".nii.gz", ".npz"))
    fused = np.load(npz)["probabilities"] if npz.is_file() else None
    plan = plan if plan.steps else PostprocessingPlan(keep_largest=(1, 2, 3))
    timings = {"plain": [], "plan": []}
    for _ in range(3):
        start = time.perf_counter()
        writer(image.array, root / "plain.nii.gz")
        timings["plain"].append(time.perf_counter() - start)
        start = time.perf_counter()
        write_through_plan(writer, image.array, root / "planned.nii.gz", plan, probabilities=fused)
        timings["plan"].append(time.perf_counter() - start)
    plain, planned = (float(np.median(v)) for v in timings.values())
    print(
        f"one case's label write: plain {plain * 1000:.0f} ms, through the plan "
        f"{planned * 1000:.0f} ms (+{(planned - plain) * 1000:.0f} ms per case)"
    )


def _plain_writer(image):  # type: ignore[no-untyped-def]
    def write(array: np.ndarray, path: Path) -> None:
        out = sitk.GetImageFromArray(array)
        out.SetSpacing(image.spacing)
        sitk.WriteImage(out, str(path), True)

    return write


def check_demo(folder: Path, workers: int) -> None:
    """Acceptance 2 on one demo output folder."""
    pred = folder / "cross_validation" / "ensemble_tuned"
    ref = folder / "nnUNet_preprocessed" / "Dataset501_SyntheticHeart" / "gt_segmentations"
    has_npz = any(pred.glob("*.npz"))
    rules = RULES if has_npz else tuple(r for r in RULES if r != "min_probability")
    start = time.perf_counter()
    plan = determine_plan(
        pred,
        ref,
        component_rules=rules,
        probabilities_dir=pred if has_npz else None,
        num_workers=workers,
    )
    print(
        f"{folder}: determine {time.perf_counter() - start:.1f} s; rules {' '.join(rules)}; kept:"
    )
    for step in plan.steps:
        entry = next(
            c
            for c in plan.metrics["candidates"]
            if c["step"] == step.step and c["label"] == step.label and c["accepted"]
        )
        print(
            f"  {step.describe()}: held-out gain {entry['held_out_gain']:+.4f}, noise "
            f"{entry['noise']:.4f}, other labels {entry['held_out_by_label']}"
        )
    if not plan.steps:
        print("  no component rule")
    print(
        f"  other steps (judged {plan.metrics['judge']}): keep_largest_foreground "
        f"{plan.keep_largest_foreground}, keep_largest {plan.keep_largest}, min_voxels "
        f"{plan.min_voxels}, fill_holes {plan.fill_holes}"
    )
    for judge in ("held-out", "in-sample"):
        changes = held_out_dice_change(pred, ref, workers, rules, judge)
        worst = min(changes.values())
        print(
            f"  5-fold held-out Dice change of the whole procedure per label, other steps judged "
            f"{judge}: { {k: round(v, 5) for k, v in changes.items()} }; worst {worst:+.5f} "
            f"({'meets' if worst >= -0.002 else 'MISSES'} >= -0.002)"
        )


def held_out_dice_change(
    pred: Path, ref: Path, workers: int, rules: tuple[str, ...], judge: str
) -> dict[str, float]:
    """Per label: mean Dice of each fold's cases under the plan determined on the other folds
    (the other steps judged by ``judge``), minus their Dice without a plan."""
    files = sorted(pred.glob("*.nii.gz"))
    folds = fold_ids(len(files))
    labels = json.loads((pred / "dataset.json").read_text())["labels"]
    ids = sorted(v for v in labels.values() if isinstance(v, int) and v > 0)
    objective = Objective("dice", nsd_tolerance=1.0, convention="nan", ignore_label=None)
    before, after = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for fold in np.unique(folds):
            train = Path(scratch) / f"fold_{fold}"
            train.mkdir()
            shutil.copyfile(pred / "dataset.json", train / "dataset.json")
            for file, f in zip(files, folds, strict=True):
                if f != fold:
                    (train / file.name).symlink_to(file)
                    npz = pred / file.name.replace(".nii.gz", ".npz")
                    if npz.is_file():
                        (train / npz.name).symlink_to(npz)
            plan = determine_plan(
                train,
                ref,
                component_rules=rules,
                probabilities_dir=train if "min_probability" in rules else None,
                num_workers=workers,
                judge=judge,
            )
            for file, f in zip(files, folds, strict=True):
                if f != fold:
                    continue
                image = read_labels(file)
                npz_file = pred / file.name.replace(".nii.gz", ".npz")
                fused = np.load(npz_file)["probabilities"] if npz_file.is_file() else None
                reference = read_labels(ref / file.name).array
                spacing = tuple(reversed(image.spacing))
                planned = apply_plan(image.array, plan, spacing=image.spacing, probabilities=fused)
                for out, array in ((before, image.array), (after, planned)):
                    out.append(objective.values([reference], [array], ids, [spacing])["dice"][0])
    diff = np.array(after) - np.array(before)
    return {str(k): float(np.nanmean(diff[:, j])) for j, k in enumerate(ids)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="4 cases of 16x64x64")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (-j)")
    parser.add_argument("--probabilities", action="store_true", help="also min_probability")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data in this folder")
    parser.add_argument("--demo", type=Path, nargs="+", default=[], help="demo output folders")
    args = parser.parse_args()
    if args.demo:
        for folder in args.demo:
            check_demo(folder, args.workers)
        return
    cases, shape = (4, (16, 64, 64)) if args.small else (10, (64, 224, 224))
    root = Path(tempfile.mkdtemp(prefix="bench_cc_")) if args.keep is None else args.keep
    try:
        if not (root / "pred").is_dir():
            make_inputs(root, cases, shape, args.probabilities)
        print(f"{cases} cases of {'x'.join(map(str, shape))}, labels 1-3, {args.workers} workers")
        time_determine(root, args.workers, args.probabilities)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
