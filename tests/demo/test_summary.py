"""The demo's summary table (fast: no nnU-Net run)."""

from __future__ import annotations

import math
from pathlib import Path

from nnunet_ext.demo.pipeline import DemoResult, format_summary


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
