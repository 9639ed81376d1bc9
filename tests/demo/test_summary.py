"""The demo's summary: the best single model beside the ensembles, and --seed (no training)."""

from __future__ import annotations

import math
from pathlib import Path

from nnunet_ext.demo.cli import add_arguments
from nnunet_ext.demo.config import DemoConfig
from nnunet_ext.demo.summary import DemoResult, best_single_model, format_summary


def result() -> DemoResult:
    res = DemoResult(Path("/tmp/demo"))
    names = ("myocardium", "LV", "RV", "foreground mean")
    rows = {
        "2d": (0.80, 0.90, 0.63, 0.777),
        "3d_fullres": (0.85, 0.92, 0.0, 0.59),
        "ensemble (equal)": (0.84, 0.91, 0.10, 0.617),
        "ensemble (tuned)": (0.86, 0.93, 0.63, 0.807),
        "tuned + postprocessing": (0.86, 0.93, math.nan, 0.895),
    }
    res.dice = {method: dict(zip(names, values, strict=True)) for method, values in rows.items()}
    return res


def test_best_single_model_is_printed_beside_the_ensembles_with_the_differences():
    res = result()
    assert best_single_model(res.dice) == "2d"
    text = format_summary(res)
    lines = text.split("Mean Dice on the test cases", 1)[1].splitlines()
    labels = [line.split("  ")[0] for line in lines[2:9]]
    assert labels == [
        "2d",
        "3d_fullres",
        "best single (2d)",
        "ensemble (equal)",
        "ensemble (tuned)",
        "tuned + postprocessing",
        "tuned + postprocessing - best single",
    ]
    assert lines[8].split()[-4:] == ["+0.0600", "+0.0300", "NaN", "+0.1180"]


def test_no_single_model_row_without_single_models():
    res = result()
    res.dice = {k: v for k, v in res.dice.items() if k.startswith("ensemble")}
    assert best_single_model(res.dice) is None
    assert "best single" not in format_summary(res)


def test_seed_and_test_cases():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--seed", "3"]).seed == 3
    assert parser.parse_args([]).seed == 0
    assert DemoConfig().num_test >= 12
    assert DemoConfig(seed=5).seed == 5
    assert DemoConfig.quick(2).seed == 2


def test_summary_shows_dice_and_hd95_per_method_and_label():
    names = ["myocardium", "LV", "foreground mean"]
    result = DemoResult(output_dir=Path("out"))
    result.dice = {"2d": dict(zip(names, [0.81, 0.9, 0.855], strict=True))}
    result.dice["tuned"] = dict(zip(names, [0.85, math.nan, 0.85], strict=True))
    result.hd95 = {"2d": dict(zip(names, [4.25, 3.0, 3.625], strict=True))}
    result.hd95["tuned"] = dict(zip(names, [2.5, math.nan, 2.5], strict=True))
    text = format_summary(result)
    dice, hd95 = text.split("Mean Dice on the test cases", 1)[1].split("Mean HD95 in mm", 1)
    assert "0.8100" in dice
    assert "4.25" not in dice
    hd95_rows = [line.split() for line in hd95.splitlines()[2:4]]
    assert hd95_rows[0] == ["2d", "4.25", "3.00", "3.62"]
    assert hd95_rows[1] == ["tuned", "2.50", "NaN", "2.50"]
    assert "LV" in hd95.splitlines()[1]


def test_route_line_stays_out_of_the_metric_tables():
    names = ["myocardium", "foreground mean"]
    res = DemoResult(output_dir=Path("out"))
    res.dice = {"2d": dict(zip(names, [0.8, 0.8], strict=True))}
    res.hd95 = {"2d": dict(zip(names, [4.0, 4.0], strict=True))}
    res.routes = {
        "nnunet-ext predict --spec": {"seconds": 10.0, "npz_bytes": 0.0},
        "npz route": {"seconds": 20.0, "npz_bytes": 2.0**20, "identical_labels": 1.0},
    }
    text = format_summary(res)
    assert "Tuned ensemble of the test images" in text.split("Mean Dice", 1)[0]
    hd95 = text.split("Mean HD95 in mm", 1)[1].split("Where everything", 1)[0]
    assert [line.split() for line in hd95.splitlines()[2:] if line.strip()] == [
        ["2d", "4.00", "4.00"]
    ]
