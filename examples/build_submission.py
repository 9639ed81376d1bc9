"""Build a challenge submission zip from a prediction folder and check it; then catch a bad zip.

What it does, top to bottom:

1. writes a small test set (``imagesTs/CASE_0000.nii.gz``) with
   :func:`nnunet_ext.synthetic.make_raw_dataset`, and a prediction folder as
   ``nnUNetv2_predict --save_probabilities`` leaves it (label files plus ``.npz``, ``.pkl`` and
   JSON files, which the zip must not contain);
2. builds the zip with :func:`nnunet_ext.submission.build_submission`: flat, label files only,
   ``uint8``, one per test image, geometry equal to the image, deterministic bytes; plus a
   manifest, a text report and a PNG preview of mid-slices;
3. checks the zip again, as a challenge server would, with
   :func:`nnunet_ext.submission.check_submission`;
4. checks a zip made by hand with two mistakes and prints every problem found.

Run:  python examples/build_submission.py [WORK_DIR]
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from _common import run

from nnunet_ext.io import read_labels
from nnunet_ext.submission import SubmissionError, build_submission, check_submission, report_text
from nnunet_ext.synthetic import make_raw_dataset, write_prediction_folder


def main(work: Path) -> None:
    work = work / "build_submission"
    work.mkdir(parents=True, exist_ok=True)

    # 1. Three test cases; the small label 3 is missing from the third (the report below counts
    #    the cases each label is present in). Only the test split is needed, so no training cases.
    dataset = make_raw_dataset(
        work / "nnUNet_raw",
        num_training=0,
        num_test=3,
        shape=(8, 32, 32),
        small_label_missing_every=3,
    )
    images_dir = dataset / "imagesTs"
    # Pretend predictions: one-hot "probabilities" of the reference test labels. The folder gets
    # CASE.nii.gz, CASE.npz, CASE.pkl, dataset.json and plans.json, like nnU-Net's output.
    probabilities = {}
    for label_file in sorted((dataset / "labelsTs").glob("*.nii.gz")):
        labels = read_labels(label_file).array
        case = label_file.name.removesuffix(".nii.gz")
        probabilities[case] = np.moveaxis(np.eye(4, dtype=np.float32)[labels], -1, 0)
    pred_dir = write_prediction_folder(work / "predictions", probabilities)
    print(f"test images in {images_dir}; predictions in {pred_dir}")
    print(f"  prediction folder holds: {sorted(p.name for p in pred_dir.iterdir())}")

    # 2. Build. Allowed labels come from the prediction folder's dataset.json (or label_ids=...);
    #    label_map={old: new} remaps values and name_template="{case}_seg" renames files for
    #    challenges that want that. Any problem raises SubmissionError and leaves no zip behind.
    zip_path = work / "submission.zip"
    report = build_submission(
        pred_dir, zip_path, images_dir=images_dir, preview=work / "preview.png", overwrite=True
    )
    print(f"built {zip_path.name} with {len(report.cases)} case(s):")
    print(report_text(report), end="")
    with zipfile.ZipFile(zip_path) as archive:
        print(f"  zip entries: {archive.namelist()}")
    print(f"  also wrote: {sorted(p.name for p in work.glob('submission.*'))} and preview.png")

    # 3. Check the zip on its own, e.g. right before uploading it.
    checked = check_submission(zip_path, images_dir=images_dir, label_ids=[0, 1, 2, 3])
    print(f"check_submission: {len(checked.cases)} case(s), all checks passed")

    # 4. A zip made by hand: one case missing, a file in a subfolder, and an extra text file.
    bad_zip = work / "handmade.zip"
    with zipfile.ZipFile(bad_zip, "w") as archive:
        archive.write(pred_dir / "heart_000.nii.gz", "heart_000.nii.gz")
        archive.write(pred_dir / "heart_001.nii.gz", "results/heart_001.nii.gz")
        archive.writestr("notes.txt", "my submission")
    try:
        check_submission(bad_zip, images_dir=images_dir, label_ids=[0, 1, 2, 3])
    except SubmissionError as error:
        print(f"check_submission({bad_zip.name}) found {len(error.problems)} problem(s):")
        for problem in error.problems:
            print(f"  {problem}")


if __name__ == "__main__":
    run(main)
