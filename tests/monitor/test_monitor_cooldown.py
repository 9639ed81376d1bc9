"""``nnunet-ext log`` shows the cooldown window and the labels the forgetting guard flagged."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from nnunet_ext.monitor import format_report, plot_history, read_training_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _story_epochs(logs: Any, count: int) -> list:
    """Myocardium and LV keep improving; RV rises to 0.6, then falls to 0 from epoch 20."""
    out = []
    for e in range(count):
        rv = min(0.6, 0.06 * e) if e < 20 else max(0.0, 0.6 - 0.1 * (e - 19))
        out.append(
            logs.Epoch(e, -0.1 - 0.01 * e, -0.05, (min(0.9, 0.3 + 0.02 * e), 0.8, rv), 0.01, 10.0)
        )
    return out


def test_cooldown_window_from_the_run_record(logs, tmp_path: Path, write_log) -> None:
    fold = tmp_path / "fold_0"
    write_log(fold, logs.make_epochs(0, 12), start=datetime(2026, 2, 1, 9), done=True)
    cooldown = {
        "start_epoch": 10,
        "epochs": 3,
        "requested_epochs": 3,
        "start_lr": 0.0091,
        "iterations_per_epoch": 250,
        "reason": "patience",
        "message": "no improvement",
        "end_epoch": 13,
        "epochs_done": 3,
        "completed": True,
        "ended_by": None,
        "checkpoint_before": "checkpoint_before_cooldown.pth",
    }
    (fold / "nnunet_ext_training.json").write_text(
        json.dumps(
            {
                "schema_version": 2,
                "settings": {"num_epochs": 100, "patience": 3, "forgetting_fraction": 0.5},
                "status": "stopped_early",
                "stop": {"reason": "patience", "message": "no improvement", "epoch": 9},
                "cooldown": cooldown,
                "labels": [],
                "forgetting": [],
            }
        )
    )
    history = read_training_history(fold)
    assert history.cooldown_window == (10, 12)
    assert history.early_stop_window == (7, 9)
    assert history.to_dict()["cooldown"] == cooldown
    assert history.forgetting == ()
    text = format_report(history)
    assert "cooldown (c): epochs 10-12 after the patience stop, learning rate 0.0091 -> 0" in text
    rows = {line.split()[0] for line in text.splitlines()[2:15] if line.strip()}
    assert {"10c", "11c"} <= rows
    assert "9" in rows
    plot_history(history, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC


def test_forgetting_of_a_plain_nnunet_run_is_computed_from_the_log(
    logs, tmp_path: Path, write_log
) -> None:
    fold = tmp_path / "Dataset501_X" / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"
    write_log(fold, _story_epochs(logs, 60), start=datetime(2026, 2, 1, 9), done=True)
    (fold.parent / "dataset.json").write_text(
        json.dumps({"labels": {"background": 0, "myocardium": 1, "LV": 2, "RV": 3}})
    )
    history = read_training_history(fold)
    (event,) = history.forgetting
    assert event["name"] == "RV"
    assert event["index"] == 2
    assert event["epochs"] == 20
    assert event["fraction"] == 0.5
    assert 20 <= event["best_epoch"] <= 26
    assert event["ema"] < 0.5 * event["best_ema"]
    text = format_report(history)
    assert "FORGETTING: label 'RV' is being forgotten" in text
    assert history.to_dict()["forgetting"][0]["epoch"] == event["epoch"]
    plot_history(history, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG_MAGIC


def test_forgetting_from_our_record_wins_over_the_log(logs, tmp_path: Path, write_log) -> None:
    fold = tmp_path / "fold_0"
    write_log(fold, _story_epochs(logs, 60), start=datetime(2026, 2, 1, 9), done=True)
    event = {
        "index": 2,
        "name": "RV",
        "epoch": 45,
        "ema": 0.1,
        "best_epoch": 22,
        "best_ema": 0.5,
        "fraction": 0.3,
        "epochs": 10,
        "message": "label 'RV' is being forgotten: (as recorded)",
    }
    (fold / "nnunet_ext_training.json").write_text(
        json.dumps(
            {
                "schema_version": 2,
                "settings": {"num_epochs": 60, "forgetting_fraction": 0.3},
                "status": "completed",
                "stop": None,
                "cooldown": None,
                "labels": [],
                "forgetting": [event],
            }
        )
    )
    history = read_training_history(fold)
    assert history.forgetting == (event,)
    assert "FORGETTING: label 'RV' is being forgotten: (as recorded)" in format_report(history)
