"""A CV set made in code with planted errors that component rules fix, and where they lie.

Labels 1 (a large region), 2 (one or two lesions, in some cases none) and 3 (one to three
lesions). The predictions equal the references except for three planted errors:

* islands of 3 (4 to ``ISLAND_MAX`` voxels) inside the reference's region of 1: what
  ``relabel_small`` 3 -> 1 fixes; real lesions of 3 have ``LESION_MIN`` voxels or more;
* false-positive blobs of 2 (background in the reference) of the size of real lesions, whose
  probability of 2 peaks at ``BLOB_MAX_PROBABILITY`` at most, while real lesions of 2 peak at
  ``LESION_PROBABILITY``: what ``min_probability`` fixes;
* in every ``GATE_EVERY``-th case the reference has no 2 and the prediction one confident blob
  of ``GATE_BLOB`` voxels at most; cases with 2 hold ``GATE_TOTAL_MIN`` voxels or more of it,
  in lesions of ``SATELLITE`` voxels and more (so size alone cannot tell the blob from a
  lesion): what ``volume_gate`` 2 -> 0 fixes.

The planted thresholds are the middles of those gaps (:data:`PLANTED`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

SHAPE = (24, 56, 56)
SPACING = (1.0, 1.0, 1.5)  # SimpleITK order (x, y, z)
ISLAND_MAX = 12  # 2 x 2 x 3
LESION_MIN = 27  # 3 x 3 x 3
BLOB_MAX_PROBABILITY = 0.5
LESION_PROBABILITY = 0.9
GATE_EVERY = 4
GATE_BLOB = 125  # 5 x 5 x 5
SATELLITE = 125
GATE_TOTAL_MIN = 343  # 7 x 7 x 7
PLANTED = {
    "relabel_small": (ISLAND_MAX + LESION_MIN) / 2,
    "min_probability": (BLOB_MAX_PROBABILITY + LESION_PROBABILITY) / 2,
    "volume_gate": (GATE_BLOB + GATE_TOTAL_MIN) / 2,
}


def _box(rng, shape, size, taken):
    """A free box of ``size`` away from the ``taken`` mask (one voxel margin)."""
    for _ in range(200):
        start = [int(rng.integers(1, s - e - 1)) for s, e in zip(shape, size, strict=True)]
        box = tuple(slice(a, a + e) for a, e in zip(start, size, strict=True))
        grown = tuple(slice(b.start - 1, b.stop + 1) for b in box)
        if not taken[grown].any():
            taken[grown] = True
            return box
    raise RuntimeError("no room left for a planted box")


def make_case(seed: int, *, gated: bool):
    """(reference, prediction, probabilities) of one case."""
    rng = np.random.default_rng(seed)
    reference = np.zeros(SHAPE, dtype=np.uint8)
    taken = np.zeros(SHAPE, dtype=bool)
    region = _box(rng, SHAPE, (14, 22, 22), taken)
    reference[region] = 1
    for _ in range(int(rng.integers(1, 4))):
        edge = int(rng.integers(3, 6))
        reference[_box(rng, SHAPE, (3, edge, edge), taken)] = 3
    if not gated:
        reference[_box(rng, SHAPE, (7, 7, 7), taken)] = 2
        if rng.random() < 0.5:
            reference[_box(rng, SHAPE, (5, 5, 5), taken)] = 2
    prediction = reference.copy()
    probabilities = np.full((4, *SHAPE), 0.1 / 3, dtype=np.float32)
    # islands of 3 inside the region of 1 (the reference says 1)
    inner = np.zeros(SHAPE, dtype=bool)
    inner[region] = True
    for _ in range(int(rng.integers(2, 5))):
        edge = (int(rng.integers(1, 4)), 2, 2)  # 4, 8 or 12 voxels
        for _ in range(100):
            start = [
                int(rng.integers(r.start + 1, r.stop - e - 1))
                for r, e in zip(region, edge, strict=True)
            ]
            box = tuple(slice(a, a + e) for a, e in zip(start, edge, strict=True))
            grown = tuple(slice(b.start - 1, b.stop + 1) for b in box)
            if np.all(prediction[grown] == 1):
                prediction[box] = 3
                break
    blobs = []
    if gated:  # as confident as a real lesion: only the case's total of 2 tells it apart
        prediction[_box(rng, SHAPE, (5, 5, 5), taken)] = 2
    for _ in range(int(rng.integers(1, 3))):
        edge = int(rng.integers(5, 8))
        peak = float(rng.uniform(0.36, BLOB_MAX_PROBABILITY))
        blobs.append((_box(rng, SHAPE, (edge, edge, edge), taken), peak))
    labels_of = np.arange(4)[:, None]
    flat = prediction.reshape(-1)
    one_hot = labels_of == flat[None]
    probabilities = probabilities.reshape(4, -1)
    probabilities[one_hot] = LESION_PROBABILITY
    probabilities = probabilities.reshape(4, *SHAPE)
    for box, peak in blobs:
        prediction[box] = 2
        values = np.full((4, *prediction[box].shape), (1 - peak) / 3, dtype=np.float32)
        values[2] = peak
        probabilities[(slice(None), *box)] = values
    return reference, prediction, probabilities


def write_cv_set(root: Path, *, num_cases: int = 12, seed: int = 0) -> tuple[Path, Path]:
    """Write ``root/pred`` (labels, ``CASE.npz``, dataset.json) and ``root/ref``."""
    pred, ref = root / "pred", root / "ref"
    pred.mkdir(parents=True)
    ref.mkdir(parents=True)
    for index in range(num_cases):
        reference, prediction, probabilities = make_case(
            seed * 1000 + index, gated=index % GATE_EVERY == 0
        )
        for array, folder in ((reference, ref), (prediction, pred)):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(SPACING)
            sitk.WriteImage(image, str(folder / f"case_{index:03d}.nii.gz"), True)
        np.savez_compressed(pred / f"case_{index:03d}.npz", probabilities=probabilities)
    (pred / "dataset.json").write_text(
        json.dumps(
            {
                "labels": {"background": 0, "region": 1, "lesion": 2, "core": 3},
                "file_ending": ".nii.gz",
                "channel_names": {"0": "MRI"},
                "numTraining": num_cases,
            }
        )
    )
    return pred, ref
