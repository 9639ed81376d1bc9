"""Fuse nnU-Net probability folders with per-label weights, from a JSON ensemble spec.

What it does, top to bottom:

1. makes three nnU-Net-style prediction folders (``CASE.npz`` + ``CASE.pkl`` + label files +
   ``dataset.json`` + ``plans.json``, as ``nnUNetv2_predict --save_probabilities`` writes them)
   from synthetic models that are each weak on a different label;
2. writes an ensemble spec: a global weight per model plus per-label overrides;
3. fuses the folders with :func:`nnunet_ext.ensemble.ensemble_folders`;
4. does the same fusion on in-memory arrays with the pure
   :func:`nnunet_ext.ensemble.fuse_probabilities` and checks both agree.

Run:  python examples/fuse_with_spec.py [WORK_DIR]
(without WORK_DIR everything happens in a temporary folder that is deleted at the end).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _common import run

from nnunet_ext.ensemble import (
    EnsembleSpec,
    ensemble_folders,
    fuse_probabilities,
    probabilities_to_labels,
)
from nnunet_ext.io import read_labels
from nnunet_ext.synthetic import DEFAULT_LABELS, make_case, write_prediction_folder

SHAPE = (8, 40, 40)  # (z, y, x): tiny, so the example runs in seconds
NUM_CLASSES = len(DEFAULT_LABELS)  # background, myocardium, LV, RV


def model_probabilities(
    rng: np.random.Generator, reference: np.ndarray, *, weak_labels: tuple[int, ...]
) -> np.ndarray:
    """Softmax output of a pretend model: good everywhere except on ``weak_labels``.

    Where the reference is a weak label, the background logit gets a boost, so the model
    misses part of that structure. Returns float32 ``(C, z, y, x)`` like nnU-Net's ``.npz``.
    """
    one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[reference]  # (z, y, x, C)
    logits = 3.0 * np.moveaxis(one_hot, -1, 0)  # (C, z, y, x)
    for label in weak_labels:
        logits[0] += 3.5 * (reference == label)
    logits += rng.normal(0.0, 1.0, size=logits.shape).astype(np.float32)
    logits -= logits.max(axis=0, keepdims=True)
    probabilities = np.exp(logits)
    return (probabilities / probabilities.sum(axis=0, keepdims=True)).astype(np.float32)


def dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    """Dice of one label between two label maps (NaN when both lack it)."""
    x, y = a == label, b == label
    total = int(x.sum() + y.sum())
    return 2.0 * float((x & y).sum()) / total if total else float("nan")


def main(work: Path) -> None:
    work = work / "fuse_with_spec"
    rng = np.random.default_rng(0)

    # 1. Two test cases and three models. Model "2d" is weak on RV (3), "3d_fullres" on LV (2),
    #    "3d_lowres" on myocardium (1).
    cases = {f"heart_{i:03d}": make_case(rng, shape=SHAPE)[1] for i in range(2)}
    weak = {"2d": (3,), "3d_fullres": (2,), "3d_lowres": (1,)}
    arrays: dict[str, dict[str, np.ndarray]] = {}  # model -> case -> probabilities
    folders = []
    for model, weak_labels in weak.items():
        arrays[model] = {
            case: model_probabilities(rng, reference, weak_labels=weak_labels)
            for case, reference in cases.items()
        }
        folders.append(write_prediction_folder(work / f"pred_{model}", arrays[model]))
    print(f"wrote {len(folders)} prediction folders with {len(cases)} cases each under {work}")

    # 2. The spec: every model gets a global weight; label_weights override it per label, by
    #    name (from dataset.json) or value. A weight of 0 drops a model for that label.
    spec = EnsembleSpec.from_weights(
        folders,
        weights=[1.0, 1.0, 0.5],
        label_weights=[{"RV": 0.0}, {"LV": 0.0}, {"myocardium": 0.0, "3": 1.0}],
    )
    spec_file = spec.save(work / "ensemble_spec.json")  # member paths stored relative to it
    print(f"spec written to {spec_file}:")
    print(json.dumps(json.loads(spec_file.read_text()), indent=2))

    # 3. Fuse the folders. `spec` also accepts the path of a spec file; overwrite=True so that
    #    rerunning the example into the same folder redoes the work.
    summary = ensemble_folders(
        None, work / "fused", spec=spec_file, save_probabilities=True, overwrite=True
    )
    print(f"fused {len(summary.written)} case(s) into {summary.output_dir}")
    print("weight matrix (rows: models, columns: background, myocardium, LV, RV):")
    for model, row in zip(weak, summary.weights, strict=True):
        print(f"  {model:<11}", "  ".join(f"{w:4.2f}" for w in row))

    # 4. The same maths on arrays: one (M, C) weight matrix, normalised per label.
    case = next(iter(cases))
    matrix = np.array(summary.weights)
    fused = fuse_probabilities([arrays[m][case] for m in weak], matrix)
    labels = probabilities_to_labels(fused)
    from_folder = read_labels(work / "fused" / f"{case}.nii.gz").array
    print(f"{case}: array fusion equals the folder output: {np.array_equal(labels, from_folder)}")

    print("per-label Dice against the reference:")
    print(f"  {'':<11} {'myo':>6} {'LV':>6} {'RV':>6}")
    for name, prediction in [
        *((m, probabilities_to_labels(arrays[m][case])) for m in weak),
        ("equal", probabilities_to_labels(fuse_probabilities([arrays[m][case] for m in weak]))),
        ("spec", labels),
    ]:
        scores = [dice(prediction, cases[case], label) for label in (1, 2, 3)]
        print(f"  {name:<11}", " ".join(f"{s:6.3f}" for s in scores))


if __name__ == "__main__":
    run(main)
