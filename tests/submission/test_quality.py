from __future__ import annotations

from pathlib import Path

import pytest

from nnunet_ext.qc.measures import LabelMeasures
from nnunet_ext.qc.report import build_report, write_qc
from nnunet_ext.qc.thresholds import QcThresholds
from nnunet_ext.submission import build_submission
from nnunet_ext.submission.cli import main
from nnunet_ext.submission.quality import qc_warnings

AGREE = LabelMeasures(3, 1.0, (1.0, 1.0), (1.0, 1.0), 0.0, (), 1, 0.0, 0.9, 1.0)
BLIND = LabelMeasures(3, 1.0, (1.0, 0.0), (1.0, 0.0), 1.0, (1,), 1, 0.0, 0.5, 1.0)


def qc_table(folder: Path) -> Path:
    report = build_report(
        {"heart_000": [BLIND], "heart_001": [AGREE]},
        member_names=["2d", "3d"],
        label_names={3: "RV"},
        thresholds=QcThresholds(),
    )
    return write_qc(report, folder)[1]


def test_check_lists_flagged_and_unchecked_cases(challenge, tmp_path, capsys):
    pred, images = challenge
    zip_path = tmp_path / "sub.zip"
    build_submission(pred, zip_path, images_dir=images)
    table = qc_table(tmp_path)
    argv = ["check", "-i", str(zip_path), "--images", str(images), "--qc", str(table)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out
    assert "WARNING: QC flags heart_000: RV: member 3d predicts no voxel of the label" in out
    assert "heart_001" not in out.split("WARNING", 1)[1].split("no row")[0]
    assert "has no row for 1 submitted case(s): heart_002" in out
    assert main([*argv, "--strict-qc"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        "submitted cases must not be flagged by the QC with --strict-qc; got 1 flagged: heart_000"
        in err
    )


def test_strict_qc_needs_qc_and_a_real_table(challenge, tmp_path, capsys):
    pred, images = challenge
    zip_path = tmp_path / "sub.zip"
    build_submission(pred, zip_path, images_dir=images)
    base = ["check", "-i", str(zip_path), "--images", str(images)]
    assert main([*base, "--strict-qc"]) == 1
    assert "--strict-qc must come with --qc" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("case,dice\n")
    assert main([*base, "--qc", str(other)]) == 1
    assert "must be a qc.csv header" in capsys.readouterr().err


def test_qc_warnings_library(tmp_path):
    table = qc_table(tmp_path)
    assert qc_warnings(table, ["heart_001"]) == []
    with pytest.raises(ValueError, match="got 1 flagged: heart_000"):
        qc_warnings(table, ["heart_000", "heart_001"], strict_qc=True)
