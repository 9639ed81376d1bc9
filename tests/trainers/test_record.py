"""The run record reader: versions 1 and 2, strict keys."""

from __future__ import annotations

import json

import pytest

from nnunet_ext.trainers.record import SCHEMA_VERSION, read_run_record, upgrade_run_record

V1 = {
    "schema_version": 1,
    "nnunet_ext_version": "0.1.0",
    "nnunetv2_version": "2.8.1",
    "torch_version": "2.9.0",
    "trainer": "CustomEpochs",
    "trainer_bases": ["nnUNetTrainer"],
    "settings": {"num_epochs": 40, "patience": 1},
    "settings_sources": {},
    "status": "stopped_early",
    "stop": {"reason": "patience", "message": "m", "epoch": 2},
    "epochs_completed": 3,
    "best_epoch": 0,
    "best_ema": 0.3,
    "started": "2026-11-22T10:00:00",
    "updated": "2026-11-22T10:10:00",
}


def test_version_1_reads_in_the_version_2_shape(tmp_path):
    path = tmp_path / "nnunet_ext_training.json"
    path.write_text(json.dumps(V1))
    record = read_run_record(path)
    assert record["schema_version"] == SCHEMA_VERSION == 2
    assert (record["cooldown"], record["labels"], record["forgetting"]) == (None, [], [])
    assert {k: v for k, v in record.items() if k in V1 and k != "schema_version"} == {
        k: v for k, v in V1.items() if k != "schema_version"
    }


def test_version_2_keeps_its_values():
    data = {**V1, "schema_version": 2, "cooldown": {"start_epoch": 3}, "labels": [{}]}
    data["forgetting"] = []
    assert upgrade_run_record(data) == data


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({**V1, "cooldown": None}, r"unknown key\(s\) 'cooldown' for schema_version 1"),
        ({**V1, "schema_version": 2, "extra": 1}, r"unknown key\(s\) 'extra'"),
        ({**V1, "schema_version": 3}, "schema_version must be 1 or 2; got 3"),
        ({**V1, "schema_version": True}, "schema_version must be 1 or 2; got True"),
        ([1, 2], "must hold a JSON object; got list"),
    ],
)
def test_bad_records_are_refused(data, match):
    with pytest.raises(ValueError, match=match):
        upgrade_run_record(data)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="file not found"):
        read_run_record(tmp_path / "nnunet_ext_training.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="must be valid UTF-8 JSON"):
        read_run_record(bad)
