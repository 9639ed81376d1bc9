from __future__ import annotations

import pytest

from nnunet_ext.demo.quality import flagged_test_cases
from nnunet_ext.qc.measures import LabelMeasures
from nnunet_ext.qc.report import build_report, write_qc
from nnunet_ext.qc.thresholds import QcThresholds

AGREE = LabelMeasures(3, 1.0, (1.0, 1.0), (1.0, 1.0), 0.0, (), 1, 0.0, 0.9, 1.0)
BLIND = LabelMeasures(3, 1.0, (1.0, 0.0), (1.0, 0.0), 1.0, (1,), 1, 0.0, 0.5, 1.0)


def test_flagged_test_cases_lists_the_riskiest_first(tmp_path):
    measures = {"c1": [AGREE], "c2": [BLIND], "c3": [BLIND]}
    report = build_report(
        measures,
        member_names=["2d", "3d_fullres"],
        label_names={3: "RV"},
        thresholds=QcThresholds(),
    )
    qc_json, _ = write_qc(report, tmp_path)
    text = flagged_test_cases(qc_json, limit=1)
    lines = text.splitlines()
    assert lines[0] == ("QC (the members' disagreement, no reference): 2 of 3 test case(s) flagged")
    assert lines[1] == (
        "  c2  RV: member 3d_fullres predicts no voxel of the label; the others do (+2 more)"
    )
    assert lines[2].startswith("  ... and 1 more (see ")
    assert "c1" not in text


def test_flagged_test_cases_needs_the_report(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"qc\.json"):
        flagged_test_cases(tmp_path / "qc.json")
