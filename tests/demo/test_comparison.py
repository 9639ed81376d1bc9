"""The demo's verdict on real evaluations of two synthetic ensembles, and its summary line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nnunet_ext.compare import load_comparison
from nnunet_ext.demo.comparison import TUNED, compare_with_equal_weights
from nnunet_ext.demo.summary import DemoResult, format_summary
from nnunet_ext.evaluate import evaluate_folder, write_evaluation
from nnunet_ext.synthetic import DEFAULT_LABELS, make_case, write_dataset_json


def _write(path: Path, array: np.ndarray) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(path), True)


def _evaluations(root: Path) -> tuple[Path, Path]:
    """``ensemble_equal.json`` (10 % of voxels relabelled) and
    ``ensemble_tuned_postprocessed.json`` (2 %) of 8 test cases, as the demo writes them."""
    rng = np.random.default_rng(0)
    folders = {
        name: root / name for name in ("labelsTs", "ensemble_equal", "ensemble_tuned_postprocessed")
    }
    for folder in folders.values():
        folder.mkdir()
    for i in range(8):
        _, ref = make_case(rng, shape=(4, 16, 16))
        _write(folders["labelsTs"] / f"heart_{i:03d}.nii.gz", ref)
        for name, share in (("ensemble_equal", 0.1), ("ensemble_tuned_postprocessed", 0.02)):
            pred = ref.copy()
            flip = rng.random(ref.shape) < share
            pred[flip] = rng.integers(0, 4, size=int(flip.sum()))
            _write(folders[name] / f"heart_{i:03d}.nii.gz", pred)
    write_dataset_json(folders["labelsTs"], DEFAULT_LABELS, 8)
    paths = []
    for name in ("ensemble_equal", "ensemble_tuned_postprocessed"):
        evaluation = evaluate_folder(
            folders[name],
            folders["labelsTs"],
            dataset_json=folders["labelsTs"] / "dataset.json",
            metrics=["dice", "hd95"],
        )
        path, _ = write_evaluation(evaluation, root / f"{name}.json")
        paths.append(path)
    return paths[0], paths[1]


def test_the_verdict_is_printed_in_the_summary(tmp_path):
    equal, tuned = _evaluations(tmp_path)
    text = compare_with_equal_weights(equal, tuned, output_json=tmp_path / "comparison.json")
    lines = text.splitlines()
    assert lines[0].startswith(f"{TUNED} against equal weights on the 8 test cases")
    assert [line.split()[0] for line in lines[1:4]] == ["myocardium", "LV", "RV"]
    assert all(line.endswith(": B better") for line in lines[1:3])  # 2 % against 10 % noise
    assert lines[-1].strip().startswith(f"{TUNED} vs equal weights: B better on ")
    assert load_comparison(tmp_path / "comparison.json").versions == ("equal weights", TUNED)
    assert json.loads((tmp_path / "comparison.json").read_text())["bootstrap"]["samples"] == 2000
    result = DemoResult(tmp_path)
    result.dice = {"2d": {"LV": 0.9, "foreground mean": 0.9}}
    result.comparison = text
    assert text in format_summary(result)
    result.comparison = ""
    assert "against equal weights" not in format_summary(result)
