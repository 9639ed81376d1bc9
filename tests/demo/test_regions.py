"""The region demo (`nnunet-ext demo --regions`): its summary and its refusals.

The full run trains four region models (minutes); `nnunet-ext demo --regions --quick` is its
smoke run, outside the suite. The real region models of the suite are the ``region_models``
fixture (tests/e2e/test_region_models.py).
"""

from __future__ import annotations

from pathlib import Path

from nnunet_ext.demo.cli import main
from nnunet_ext.demo.regions import RegionDemoResult, format_region_summary


def test_summary_compares_the_tuned_ensemble_with_the_best_single_model():
    dice = {
        "2d": {"WT": 0.9, "TC": 0.7, "ET": 0.5, "mean": 0.7},
        "3d_fullres": {"WT": 0.92, "TC": 0.8, "ET": 0.6, "mean": 0.7733},
        "equal": {"WT": 0.91, "TC": 0.78, "ET": 0.55, "mean": 0.7467},
        "tuned": {"WT": 0.91, "TC": 0.79, "ET": 0.6, "mean": 0.7667},
    }
    text = format_region_summary(RegionDemoResult(Path("d"), dice=dice))
    assert text.splitlines()[0].split() == ["method", "WT", "TC", "ET", "mean"]
    assert "3d_fullres  0.9200  0.8000  0.6000  0.7733" in text
    assert text.endswith("best single model's: -0.0066 (acceptance: >= -0.01)")


def test_regions_refuses_a_folder_that_is_not_a_demo(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["--regions", "--quick", "-o", str(tmp_path)]) == 1
    assert "is not a demo folder" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"
