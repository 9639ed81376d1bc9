"""Evaluate a prediction folder against references, and see what an empty reference does.

What it does, top to bottom:

1. writes three reference label maps and three predictions; the small label RV (3) is present
   in case 0, absent from reference *and* prediction in case 1, and absent from the reference
   but falsely predicted in case 2;
2. evaluates the folder with :func:`nnunet_ext.evaluate.evaluate_folder` under the three
   empty-mask policies and prints RV's per-case Dice and mean under each:

   * ``"nan"`` (default, nnU-Net's ``compute_metrics_on_folder``): both empty -> NaN, left out
     of the mean;
   * ``"one"`` (MedPy, Metrics Reloaded): both empty -> 1, counted;
   * ``"skip"``: every case whose reference lacks the label is left out, false positives too;

3. writes the nnU-Net-compatible summary JSON and a per-case CSV;
4. shows the counting functions on two arrays directly;
5. adds the boundary metrics (HD95, NSD in mm, from the references' spacing) under the default
   convention (NaN where a side is empty, counted) and BraTS' (both empty 0, one side 374 mm).

Run:  python examples/evaluate_folder.py [WORK_DIR]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _common import run, write_label_files

from nnunet_ext.evaluate import (
    COUNT_FIELDS,
    EMPTY_POLICIES,
    confusion_counts,
    dice_from_counts,
    evaluate_folder,
    format_table,
    write_evaluation,
)
from nnunet_ext.synthetic import DEFAULT_LABELS, make_case

SHAPE = (8, 40, 40)


def write_label_folder(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``CASE.nii.gz`` label files and a dataset.json (all evaluate needs)."""
    write_label_files(folder, arrays)
    dataset_json = {
        "channel_names": {"0": "MRI"},
        "labels": DEFAULT_LABELS,
        "numTraining": len(arrays),
        "file_ending": ".nii.gz",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder


def main(work: Path) -> None:
    work = work / "evaluate_folder"
    rng = np.random.default_rng(3)

    # 1. References: RV (3) only in case 0. Predictions: the reference shifted by one voxel
    #    (boundary errors), and in case 2 a false-positive RV blob.
    references = {
        f"heart_{i:03d}": make_case(rng, shape=SHAPE, with_small_label=i == 0)[1] for i in range(3)
    }
    predictions = {case: np.roll(ref, 1, axis=2) for case, ref in references.items()}
    predictions["heart_002"][2:5, 2:6, 2:6] = 3
    ref_dir = write_label_folder(work / "references", references)
    pred_dir = write_label_folder(work / "predictions", predictions)
    print(f"wrote {len(references)} references and predictions under {work}")

    # 2. Evaluate under each policy. Two worker processes read and count the cases (spawn pool).
    # The per-case Dice is the same under "nan" and "skip"; "skip" only changes which cases enter
    # the mean (heart_002's Dice of 0 is left out because its reference has no RV).
    print("RV (label 3) Dice per case and mean, by empty policy:")
    print(f"  {'policy':<6}" + "".join(f"{c:>11}" for c in references) + f"{'mean':>9}  in mean")
    evaluations = {}
    for policy in EMPTY_POLICIES:
        evaluation = evaluate_folder(pred_dir, ref_dir, empty=policy, num_workers=2)
        evaluations[policy] = evaluation
        rv = [summary.label for summary in evaluation.labels].index(3)  # RV's row
        per_case = "".join(f"{case.dice[rv]:>11.4f}" for case in evaluation.cases)
        summary = evaluation.labels[rv]
        print(
            f"  {policy:<6}{per_case}{summary.dice:>9.4f}  "
            f"{summary.num_in_mean}/{summary.num_cases} cases"
        )

    print("\nthe full table with the default policy (nnU-Net's numbers):")
    print(format_table(evaluations["nan"]))

    # 3. summary.json-like JSON (strict: NaN is written as null) and one CSV row per case/label.
    json_file, csv_file = write_evaluation(evaluations["nan"], work / "evaluation.json")
    print(f"\nwrote {json_file.name} and {csv_file.name}")

    # 4. The counting maths on arrays: one pass gives TP, FP, FN, TN and voxel counts per label.
    reference = np.array([[0, 1, 1, 0], [0, 2, 2, 0]], dtype=np.uint8)
    prediction = np.array([[0, 1, 0, 0], [0, 2, 2, 2]], dtype=np.uint8)
    counts = confusion_counts(reference, prediction, label_ids=[1, 2, 3])
    print(f"\ncounts per label ({', '.join(COUNT_FIELDS)}):")
    for label, row in zip([1, 2, 3], counts, strict=True):
        tp, fp, fn = row[:3]
        print(
            f"  label {label}: {row.tolist()}  Dice nan-policy {dice_from_counts(tp, fp, fn):.4f}"
            f", one-policy {dice_from_counts(tp, fp, fn, empty='one'):.4f}"
        )

    # 5. Boundary metrics: distances in mm with each reference's spacing (2.5 mm slices here).
    print("\nRV (label 3) HD95 in mm per case, by convention:")
    for convention in ("nan", "brats"):
        evaluation = evaluate_folder(
            pred_dir, ref_dir, metrics=["dice", "hd95", "nsd"], convention=convention
        )
        rv = [summary.label for summary in evaluation.labels].index(3)
        per_case = "".join(f"{case.values['hd95'][rv]:>11.2f}" for case in evaluation.cases)
        summary = evaluation.labels[rv]
        print(
            f"  {convention:<6}{per_case}  mean {summary.values['hd95']:.2f}, "
            f"undefined in {summary.num_undefined['hd95']} case(s)"
        )


if __name__ == "__main__":
    run(main)
