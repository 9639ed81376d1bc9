"""Tune per-label ensemble weights on cross-validation predictions, then fuse and evaluate.

What it does, top to bottom:

1. makes cross-validation (CV) probability folders of two models that are good at different
   labels (as ``nnUNetv2_train --npz`` leaves them in ``fold_k/validation``), and the reference
   label files (as nnU-Net's ``gt_segmentations``);
2. tunes one weight per model and label with :func:`nnunet_ext.tune.tune_weights`, then one
   rule per label (weighted, "from" one model, or a decision scale, taken only when its
   held-out gain beats the bootstrap noise), and prints the per-label table (each model, equal
   weights, tuned, in-sample and held-out gain, rule) with every rule candidate's Dice;
3. writes the tuned ensemble spec (plus a JSON report and a PNG of the gains);
4. fuses the CV folders with that spec and evaluates every model, the equal-weight ensemble
   and the tuned ensemble with :func:`nnunet_ext.evaluate.evaluate_folder`.

In a real project you tune on the CV folders and apply the spec to the *test* predictions of
the same models: ``ensemble_folders([test_2d, test_3d], out, spec=spec_file)`` (the folders
given there replace the spec's folders in the same order).

Run:  python examples/tune_weights.py [WORK_DIR]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import SPACING, run, write_label_files

from nnunet_ext.ensemble import ensemble_folders
from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.synthetic import DEFAULT_LABELS, make_case, write_prediction_folder
from nnunet_ext.tune import format_table, tune_weights, write_outputs

SHAPE = (8, 40, 40)
NUM_CLASSES = len(DEFAULT_LABELS)
LABEL_NAMES = {v: k for k, v in DEFAULT_LABELS.items()}


def model_probabilities(
    rng: np.random.Generator, reference: np.ndarray, *, weak_labels: tuple[int, ...]
) -> np.ndarray:
    """Softmax output of a pretend model that confidently misses ``weak_labels``."""
    one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[reference]
    logits = 3.0 * np.moveaxis(one_hot, -1, 0)  # (C, z, y, x)
    for label in weak_labels:
        logits[0] += 5.0 * (reference == label)  # predicts background there
    logits += rng.normal(0.0, 1.0, size=logits.shape).astype(np.float32)
    logits -= logits.max(axis=0, keepdims=True)
    probabilities = np.exp(logits)
    return (probabilities / probabilities.sum(axis=0, keepdims=True)).astype(np.float32)


def main(work: Path) -> None:
    work = work / "tune_weights"
    rng = np.random.default_rng(1)

    # 1. Six CV cases; label 3 (RV) is absent from the last one, as small labels sometimes are.
    references = {
        f"heart_{i:03d}": make_case(rng, shape=SHAPE, with_small_label=i != 5)[1] for i in range(6)
    }
    gt_dir = write_label_files(work / "gt_segmentations", references)

    # "2d" segments myocardium and LV well but misses RV; "3d_fullres" is the other way round.
    weak = {"2d": (3,), "3d_fullres": (1, 2)}
    cv_dirs = []
    for model, weak_labels in weak.items():
        probabilities = {
            case: model_probabilities(rng, labels, weak_labels=weak_labels)
            for case, labels in references.items()
        }
        cv_dirs.append(
            write_prediction_folder(work / f"cv_{model}", probabilities, spacing=SPACING)
        )
    print(f"wrote CV folders {[d.name for d in cv_dirs]} and {gt_dir.name} under {work}")

    # 2. Tune. cv_folds re-tunes on k-1 folds of the cases and scores the held-out fold: a gain
    #    that only shows in-sample is a warning sign of overfitting the CV cases.
    result = tune_weights(cv_dirs, gt_dir, cv_folds=3)
    print(format_table(result))

    # 3. The spec (what `nnunet-ext ensemble --spec` reads), a JSON report and a PNG of the gains.
    spec_file, report_file, figure_file = write_outputs(result, work / "tuned_spec.json")
    print(f"tuned spec: {spec_file}; report: {report_file.name}; figure: {figure_file.name}")

    # 4. Fuse with equal weights and with the tuned spec, then evaluate everything.
    ensemble_folders(cv_dirs, work / "fused_equal", overwrite=True)
    ensemble_folders(None, work / "fused_tuned", spec=spec_file, overwrite=True)
    candidates = {
        **{model: folder for model, folder in zip(weak, cv_dirs, strict=True)},
        "equal": work / "fused_equal",
        "tuned": work / "fused_tuned",
    }
    print("mean Dice per label (evaluate_folder against gt_segmentations):")
    print(f"  {'':<11}" + "".join(f"{LABEL_NAMES[label]:>12}" for label in (1, 2, 3)))
    tuned_mean = equal_mean = 0.0
    for name, folder in candidates.items():
        evaluation = evaluate_folder(folder, gt_dir)
        print(f"  {name:<11}" + "".join(f"{s.dice:12.4f}" for s in evaluation.labels))
        if name == "tuned":
            tuned_mean = evaluation.foreground_dice
        if name == "equal":
            equal_mean = evaluation.foreground_dice
    print(f"foreground mean Dice: equal {equal_mean:.4f} -> tuned {tuned_mean:.4f}")


if __name__ == "__main__":
    run(main)
