"""Evaluations to compare, made by the real ``evaluate`` on synthetic label folders.

:func:`write_versions` writes one reference folder and one prediction folder per version (the
references with a share of voxels relabelled at random: a higher share, a worse version) and
evaluates each with ``nnunet-ext evaluate --json``. :func:`with_dice` returns a real evaluation
whose per-case Dice is replaced by given values (a known per-case shift), its means recomputed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_ext._stats import nan_mean
from nnunet_ext.cli import main
from nnunet_ext.evaluate import Evaluation
from nnunet_ext.synthetic import make_case, write_dataset_json


def write_label(path: Path, array: np.ndarray) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(path), True)


LABELS = {"background": 0, "myocardium": 1, "LV": 2, "RV": 3}
SHAPE = (4, 16, 16)


def write_versions(
    root: Path,
    noise: Sequence[float],
    *,
    num_cases: int = 8,
    seed: int = 0,
    extra: Sequence[str] = (),
) -> list[Path]:
    """Write ``root/ref`` and ``root/v<k>`` for each noise share; return the evaluation files.

    ``extra`` are further ``evaluate`` arguments (``--metrics dice hd95``...).
    """
    rng = np.random.default_rng(seed)
    ref_dir = root / "ref"
    ref_dir.mkdir(parents=True)
    references = {}
    for i in range(num_cases):
        _, ref = make_case(rng, shape=SHAPE, with_small_label=i % 3 != 1)
        references[f"case_{i:03d}"] = ref
        write_label(ref_dir / f"case_{i:03d}.nii.gz", ref)
    write_dataset_json(ref_dir, LABELS, num_cases)
    files = []
    for k, share in enumerate(noise):
        pred_dir = root / f"v{k}"
        pred_dir.mkdir()
        for case, ref in references.items():
            pred = ref.copy()
            flip = rng.random(SHAPE) < share
            pred[flip] = rng.integers(0, 4, size=int(flip.sum()))
            write_label(pred_dir / f"{case}.nii.gz", pred)
        files.append(evaluate(root, k, root / f"v{k}.json", *extra))
    return files


def evaluate(root: Path, k: int, out: Path, *extra: str) -> Path:
    """Run ``nnunet-ext evaluate --json out`` on version ``k`` of ``root``; return ``out``."""
    pred_dir, ref_dir = root / f"v{k}", root / "ref"
    argv = ["-q", "evaluate", "-i", str(pred_dir), "-r", str(ref_dir), "--json", str(out)]
    code = main([*argv, "--dataset-json", str(ref_dir / "dataset.json"), *extra])
    assert code == 0, f"evaluate failed on {pred_dir}"
    return out


def with_dice(template: Evaluation, dice: np.ndarray) -> Evaluation:
    """``template`` with per-case Dice ``dice`` (``(cases, labels)``) and its label means."""
    cases = [
        dataclasses.replace(case, dice=np.array(row, dtype=np.float64))
        for case, row in zip(template.cases, dice, strict=True)
    ]
    labels = [
        dataclasses.replace(label, dice=nan_mean(dice[:, j], compact=True))
        for j, label in enumerate(template.labels)
    ]
    return dataclasses.replace(template, cases=cases, labels=labels)
