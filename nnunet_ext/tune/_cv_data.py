"""Synthetic CV folders where each model is good at different labels (tests and benchmarks)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["make_cv_folders", "model_probabilities"]


def model_probabilities(
    rng: np.random.Generator,
    reference: NDArray[Any],
    *,
    num_classes: int,
    good_labels: Sequence[int],
    noise: float = 1.0,
) -> NDArray[np.float32]:
    """Softmax probabilities of a model that is sharp on ``good_labels`` and biased elsewhere.

    Far from every structure the background is confident, as with real nnU-Net outputs.
    """
    from scipy import ndimage

    near = ndimage.maximum_filter(reference > 0, size=7)
    logits = np.zeros((num_classes, *reference.shape), dtype=np.float32)
    for c in range(num_classes):
        logits[c] += 3.0 * (reference == c)
        if c > 0 and c not in good_labels:
            # misses much of the labels it is bad at (predicts background there)
            logits[0] += 3.6 * (reference == c)
    logits += noise * rng.standard_normal(logits.shape, dtype=np.float32) * near
    logits[0] += 8.0 * ~near
    logits -= logits.max(axis=0, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=0, keepdims=True)
    return logits


def make_cv_folders(
    root: str | Path,
    *,
    good_labels: Sequence[Sequence[int]] = ((1,), (2,)),
    num_cases: int = 6,
    shape: tuple[int, int, int] = (12, 40, 40),
    seed: int = 0,
) -> tuple[list[Path], Path]:
    """Write one CV probability folder per model and a reference folder under ``root``.

    Args:
        root: Parent folder (created).
        good_labels: For each model, the labels it segments well.
        num_cases: Cases per folder; label 3 is absent from every fourth.
        shape: Case shape (z, y, x).
        seed: Random seed.

    Returns:
        ``(model_dirs, reference_dir)``.
    """
    import SimpleITK as sitk  # noqa: N813

    from nnunet_ext.synthetic import DEFAULT_LABELS, make_case, write_prediction_folder

    rng = np.random.default_rng(seed)
    out = Path(root)
    ref_dir = out / "gt_segmentations"
    ref_dir.mkdir(parents=True, exist_ok=True)
    references = {}
    for i in range(num_cases):
        _, labels = make_case(rng, shape=shape, with_small_label=i % 4 != 3)
        case = f"case_{i:03d}"
        references[case] = labels
        image = sitk.GetImageFromArray(labels)
        image.SetSpacing((1.0, 1.0, 2.5))  # type: ignore[no-untyped-call,unused-ignore]
        sitk.WriteImage(image, str(ref_dir / f"{case}.nii.gz"), True)
    dataset = {
        "channel_names": {"0": "MRI"},
        "labels": DEFAULT_LABELS,
        "numTraining": num_cases,
        "file_ending": ".nii.gz",
    }
    (out / "dataset.json").write_text(json.dumps(dataset))
    model_dirs = []
    for m, good in enumerate(good_labels):
        probabilities = {
            case: model_probabilities(rng, labels, num_classes=4, good_labels=good)
            for case, labels in references.items()
        }
        folder = out / f"model_{m}" / "validation"
        write_prediction_folder(folder, probabilities, spacing=(1.0, 1.0, 2.5))
        model_dirs.append(folder)
    return model_dirs, ref_dir
