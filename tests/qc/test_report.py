from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from nnunet_ext.io.errors import InputError
from nnunet_ext.qc.measures import LabelMeasures, measure_case
from nnunet_ext.qc.report import CSV_COLUMNS, build_report, load_qc, load_qc_csv, write_qc
from nnunet_ext.qc.thresholds import QcThresholds

from .conftest import confident, heart

NAMES = {1: "myocardium", 2: "LV", 3: "RV"}


def report():
    reference = heart()
    blind = reference.copy()
    blind[blind == 3] = 0
    fused = confident(reference)
    measures = {
        "agree": measure_case(fused, reference, [reference, reference]),
        "blind": measure_case(fused, reference, [reference, blind]),
    }
    return build_report(
        measures, member_names=["2d", "3d"], label_names=NAMES, thresholds=QcThresholds()
    )


def test_report_sorts_flagged_cases_first_and_round_trips(tmp_path):
    built = report()
    assert [c.case for c in built.cases] == ["blind", "agree"]
    assert [c.case for c in built.flagged] == ["blind"]
    json_file, csv_file = write_qc(built, tmp_path)
    assert load_qc(json_file) == built
    data = json.loads(json_file.read_text())
    assert data["schema_version"] == 1
    assert data["cases"][0]["labels"][2]["empty_members"] == ["3d"]
    rows = list(csv.DictReader(csv_file.read_text().splitlines()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 6
    flagged = {(r["case"], r["name"]): r["flag"] for r in rows if r["flag"]}
    assert list(flagged) == [("blind", "RV")]
    assert "member 3d predicts no voxel" in flagged["blind", "RV"]
    assert load_qc_csv(csv_file) == {"blind": [("RV", flagged["blind", "RV"])], "agree": []}


def test_report_keeps_non_finite_out_of_the_json(tmp_path):
    m = LabelMeasures(1, 0.0, (0.0,), (1.0,), 0.0, (), 0, 0.0, 1.0, 1.0)
    built = build_report({"c": [m]}, member_names=["a"], label_names={}, thresholds=QcThresholds())
    text = write_qc(built, tmp_path)[0].read_text()
    assert "NaN" not in text
    assert load_qc(tmp_path / "qc.json").cases[0].labels[0].name == "1"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        pytest.param(lambda d: d.update(extra=1), r"extra must be absent", id="top-key"),
        pytest.param(lambda d: d.update(schema_version=2), r"schema_version must be 1", id="ver"),
        pytest.param(lambda d: d["cases"][0].update(note=1), r"cases\[0\]\.note", id="case"),
        pytest.param(
            lambda d: d["cases"][0]["labels"][0].update(dice=1), r"labels\[0\]\.dice", id="label"
        ),
        pytest.param(
            lambda d: d["cases"][0]["labels"][0].pop("soft_dice"), r"soft_dice", id="missing"
        ),
        pytest.param(
            lambda d: d["cases"][0]["labels"][0].update(member_dice=[1.0]),
            r"member_dice must be a list of 2 numbers",
            id="members",
        ),
        pytest.param(
            lambda d: d["cases"][0]["labels"][0].update(empty_members=["4d"]),
            r"must be member names",
            id="member-name",
        ),
        pytest.param(lambda d: d["thresholds"].update(x=1), r"thresholds\.x", id="thresholds"),
    ],
)
def test_load_qc_is_strict(tmp_path, edit, match):
    file = write_qc(report(), tmp_path)[0]
    data = json.loads(file.read_text())
    edit(data)
    file.write_text(json.dumps(data))
    with pytest.raises(InputError, match=match):
        load_qc(file)


def test_load_qc_csv_refuses_other_tables(tmp_path):
    file = tmp_path / "qc.csv"
    file.write_text("case,label\nc,1\n")
    with pytest.raises(InputError, match=r"must be a qc\.csv header"):
        load_qc_csv(file)
    write_qc(report(), tmp_path)
    text = (tmp_path / "qc.csv").read_text().splitlines()
    file.write_text("\n".join([text[0], text[1] + ",extra"]))
    with pytest.raises(InputError, match="must be 14 columns; got 15 on line 2"):
        load_qc_csv(file)
    with pytest.raises(FileNotFoundError, match="QC table not found"):
        load_qc_csv(tmp_path / "none.csv")


def test_member_dice_of_identical_members_is_one():
    labels = heart()
    measures = measure_case(confident(labels), labels, [labels, labels, labels])
    assert all(m.member_dice == (1.0, 1.0, 1.0) for m in measures)
    assert np.all([m.volume_cv == 0 for m in measures])


def test_risk_leaves_out_the_members_that_predict_nothing():
    blind = LabelMeasures(3, 1.0, (1.0, 0.0), (0.9, 0.0), 1.0, (1,), 1, 0.0, 0.5, 0.8)
    scaled = LabelMeasures(3, 1.0, (0.0, 0.0), (0.0, 0.0), 0.0, (), 1, 0.0, 0.5, 0.7)
    built = build_report(
        {"a": [blind], "b": [scaled]},
        member_names=["2d", "3d"],
        label_names={3: "RV"},
        thresholds=QcThresholds(),
    )
    assert [round(c.risk, 6) for c in built.cases] == [1.0, 0.2]
