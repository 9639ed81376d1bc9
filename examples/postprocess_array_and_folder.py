"""Postprocess label maps: the pure array functions, then a whole folder with a JSON plan.

What it does, top to bottom:

1. draws a small 2D label map by hand (a myocardium ring around an LV with a hole in it,
   a few stray islands) and prints it before and after
   :func:`~nnunet_ext.postprocess.keep_largest_component`,
   :func:`~nnunet_ext.postprocess.remove_small_components` and
   :func:`~nnunet_ext.postprocess.fill_holes`;
2. writes a folder of noisy 3D predictions plus their references, lets
   :func:`~nnunet_ext.postprocess.determine_plan` choose the steps per label by Dice
   (nnU-Net's rule), saves the plan as JSON and applies it to the folder with
   :func:`~nnunet_ext.postprocess.postprocess_folder` in two worker processes.

Run:  python examples/postprocess_array_and_folder.py [WORK_DIR]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import SPACING, run, write_label_files

from nnunet_ext.postprocess import (
    PostprocessingPlan,
    apply_plan,
    determine_plan,
    fill_holes,
    keep_largest_component,
    load_plan,
    postprocess_folder,
    remove_small_components,
    save_plan,
)
from nnunet_ext.synthetic import make_case, write_prediction_folder

SHAPE = (8, 40, 40)

# 0 background, 1 myocardium (ring), 2 LV (inside the ring, with a one-voxel hole), 3 RV.
# Stray islands: a single 1 at the top right, a two-voxel 2 at the bottom left, a lone 3.
HAND_DRAWN = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
        [0, 1, 1, 2, 2, 2, 1, 1, 0, 3, 3, 0],
        [0, 1, 2, 2, 0, 2, 2, 1, 0, 3, 3, 0],
        [0, 1, 2, 2, 2, 2, 2, 1, 0, 3, 3, 0],
        [0, 1, 1, 2, 2, 2, 1, 1, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 3],
        [2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=np.uint8,
)


def show(title: str, labels: np.ndarray) -> None:
    """Print a 2D label map, '.' for background."""
    print(title)
    for row in labels:
        print("   " + " ".join("." if v == 0 else str(v) for v in row))


def arrays_demo() -> None:
    show("hand-drawn labels:", HAND_DRAWN)
    # Each function returns a new array with the same shape and dtype; the input is untouched.
    largest = keep_largest_component(HAND_DRAWN, label_ids=[1, 2])
    show("keep_largest_component(label_ids=[1, 2]): the stray 1 and 2 islands are gone", largest)
    small = remove_small_components(HAND_DRAWN, min_voxels={3: 2})
    show("remove_small_components(min_voxels={3: 2}): the one-voxel 3 is gone", small)
    # Only background changes: the pocket inside the LV becomes LV (2), never myocardium (1).
    filled = fill_holes(HAND_DRAWN, label_ids=[1, 2])
    show("fill_holes(label_ids=[1, 2]): the hole in the LV is LV now", filled)
    # All three in one plan, in the documented order.
    plan = PostprocessingPlan(keep_largest=(1, 2), min_voxels={3: 2}, fill_holes=(1, 2))
    cleaned = apply_plan(HAND_DRAWN, plan)
    show("apply_plan(all three):", cleaned)
    print(f"voxels changed by the plan: {int((cleaned != HAND_DRAWN).sum())}")


def noisy_prediction(rng: np.random.Generator, reference: np.ndarray) -> np.ndarray:
    """A prediction with the usual defects: stray blobs of each label and holes in the LV."""
    prediction = reference.copy()
    z, _, x = reference.shape
    for label in (1, 2, 3):
        for _ in range(2):  # two 1x2x2 islands of the label somewhere in the background
            zz, yy, xx = rng.integers(0, z - 1), rng.integers(0, 4), rng.integers(0, x - 2)
            prediction[zz, yy : yy + 2, xx : xx + 2] = label
    lv = np.argwhere(reference == 2)
    for index in rng.choice(len(lv), size=3, replace=False):  # three holes in the LV
        prediction[tuple(lv[index])] = 0
    return prediction


def folder_demo(work: Path) -> None:
    rng = np.random.default_rng(2)
    references = {f"heart_{i:03d}": make_case(rng, shape=SHAPE)[1] for i in range(3)}
    predictions = {case: noisy_prediction(rng, ref) for case, ref in references.items()}

    # nnU-Net-style folders: the prediction folder gets dataset.json and plans.json as
    # nnUNetv2_predict writes them (here from one-hot "probabilities" whose argmax is the labels).
    one_hot = {
        c: np.moveaxis(np.eye(4, dtype=np.float32)[p], -1, 0) for c, p in predictions.items()
    }
    pred_dir = write_prediction_folder(work / "predictions", one_hot, spacing=SPACING)
    ref_dir = write_label_files(work / "references", references)

    # Choose the steps on (validation) predictions against references: each step is kept only if
    # it improves that label's mean Dice. The before/after Dice is recorded in plan.metrics.
    # Here the whole-foreground step is left out so that the per-label choices show.
    plan = determine_plan(pred_dir, ref_dir, try_keep_largest_foreground=False, min_voxels={3: 10})
    print("steps tried by determine_plan (mean Dice of the label before -> after):")
    for step in plan.metrics["steps"]:
        verdict = "accepted" if step["accepted"] else "rejected"
        print(
            f"  {step['operation']:<15} label {step['label']}: "
            f"{step['dice_before']:.4f} -> {step['dice_after']:.4f}  {verdict}"
        )
    plan_file = save_plan(plan, work / "postprocessing_plan.json")
    print(
        f"plan saved to {plan_file.name}: keep_largest={list(plan.keep_largest)}, "
        f"min_voxels={plan.min_voxels}, fill_holes={list(plan.fill_holes)}"
    )

    # Apply it to a folder (here the same one; normally the test predictions). Two workers run
    # in a spawn pool, which is why this script has an `if __name__ == "__main__":` guard.
    result = postprocess_folder(
        pred_dir, work / "postprocessed", plan=load_plan(plan_file), num_workers=2, overwrite=True
    )
    print(f"postprocessed {len(result.written)} case(s) into {result.output_dir}:")
    for case, changed in result.changed_voxels.items():
        print(f"  {case}: {changed} voxels changed")


def main(work: Path) -> None:
    work = work / "postprocess_array_and_folder"
    arrays_demo()
    folder_demo(work)


if __name__ == "__main__":
    run(main)
