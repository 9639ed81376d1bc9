from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext import cli as umbrella
from nnunet_ext.io.errors import InputError
from nnunet_ext.monitor import format_report, plot_history, read_training_history
from nnunet_ext.monitor.cli import main
from nnunet_ext.monitor.parser import EPOCH_KEYS, parse_log_text, parse_pseudo_dice
from nnunet_ext.monitor.series import compute_ema, find_collapsing_labels
from nnunet_ext.monitor.watch import watch_training

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- acceptance 1 -----------------------------------------------------------------------------


def test_acceptance_two_logs_json_and_png(
    logs: Any, two_log_fold: Path, tmp_path: Path, capsys
) -> None:
    out_json, out_png = tmp_path / "X.json", tmp_path / "Y.png"
    code = umbrella.main(
        ["log", "-i", str(two_log_fold), "--json", str(out_json), "--plot", str(out_png)]
    )
    assert code == 0
    report = json.loads(out_json.read_text())
    expected = logs.make_epochs(0, 11)
    assert [e["epoch"] for e in report["epochs"]] == list(range(12))
    for got, want in zip(report["epochs"], expected, strict=True):
        assert tuple(got) == EPOCH_KEYS
        assert got["train_loss"] == pytest.approx(want.train_loss, abs=1e-9)
        assert got["val_loss"] == pytest.approx(want.val_loss, abs=1e-9)
        assert got["pseudo_dice"] == pytest.approx(list(want.dice), abs=1e-6)
        assert got["epoch_time_s"] == pytest.approx(want.time_s, abs=1e-9)
        assert got["learning_rate"] == pytest.approx(want.lr, abs=1e-9)
    assert report["schema_version"] == 2
    assert report["label_names"] == ["myocardium", "LV", "RV"]
    assert report["status"] == "completed"
    assert report["stopped"] is True
    assert len(report["log_files"]) == 2
    assert out_png.read_bytes()[:8] == PNG_MAGIC
    assert out_png.stat().st_size > 10_000
    stdout = capsys.readouterr().out
    assert "epochs finished: 12 of ?" in stdout
    assert "11*" in stdout  # values rise every epoch: the last one is the best


def test_ema_recomputed_as_nnunet_does(logs: Any, two_log_fold: Path) -> None:
    history = read_training_history(two_log_fold)
    means = [float(np.nanmean(e.dice)) for e in logs.make_epochs(0, 11)]
    ema = [means[0]]
    for m in means[1:]:
        ema.append(0.9 * ema[-1] + 0.1 * m)
    assert [e.ema_pseudo_dice for e in history.epochs] == pytest.approx(ema, abs=1e-6)
    best = history.best
    assert best is not None
    assert best.epoch == 11
    # the value nnU-Net logged (rounded to 4 decimals) agrees with the recomputed EMA
    assert best.logged_best_ema == pytest.approx(ema[-1], abs=1e-4)


def test_logs_ordered_by_time_not_name(two_log_fold: Path) -> None:
    # names: training_log_2026_11_9_... (first) sorts after training_log_2026_11_10_... as text
    history = read_training_history(two_log_fold)
    assert [p.name for p in history.log_files] == [
        "training_log_2026_11_9_10_00_00.txt",
        "training_log_2026_11_10_08_00_00.txt",
    ]


def test_restart_replaces_rerun_epochs(logs: Any, tmp_path: Path, write_log: Any) -> None:
    fold = tmp_path / "fold_0"
    write_log(fold, logs.make_epochs(0, 6), start=datetime(2026, 1, 1, 9))
    # --c from checkpoint_latest at epoch 4: epochs 5-9 are re-run with other values
    rerun = logs.make_epochs(5, 9, offset=0.02)
    write_log(fold, rerun, start=datetime(2026, 1, 1, 12), numpy2=False)
    history = read_training_history(fold)
    assert [e.epoch for e in history.epochs] == list(range(10))
    assert history.epochs[5].pseudo_dice == pytest.approx(rerun[0].dice)
    assert history.epochs[4].pseudo_dice == pytest.approx(logs.make_epochs(4, 4)[0].dice)
    assert any("re-ran epochs 5-6" in w for w in history.warnings)
    assert history.epochs[5].source.startswith("training_log_2026_1_1_12")


def test_unfinished_epoch_and_running_status(logs: Any, tmp_path: Path, write_log: Any) -> None:
    fold = tmp_path / "fold_1"
    start = datetime.now() - timedelta(seconds=200)
    epochs = logs.make_epochs(0, 3)
    write_log(fold, epochs[:3], start=start, unfinished=epochs[3])
    history = read_training_history(fold)
    assert len(history.epochs) == 3
    assert history.status == "running"
    assert history.unfinished_epoch == 3
    stale = read_training_history(fold, stale_after_s=1.0)
    assert stale.status == "not_running"
    assert "resume it with nnUNetv2_train ... --c" in format_report(stale)


def test_settings_from_our_trainer_json(logs: Any, tmp_path: Path, write_log: Any) -> None:
    fold = tmp_path / "fold_0"
    write_log(fold, logs.make_epochs(0, 9), start=datetime(2026, 2, 1, 9), done=True)
    (fold / "nnunet_ext_training.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "nnunet_ext_version": "0.1.0",
                "nnunetv2_version": "2.8.1",
                "trainer": "CustomEpochs",
                "settings": {
                    "num_epochs": 50,
                    "num_iterations_per_epoch": 2,
                    "num_val_iterations_per_epoch": 1,
                    "patience": 4,
                    "min_delta": 0.0,
                    "min_epochs": 0,
                    "target_dice": None,
                },
                "settings_sources": {},
                "status": "stopped_early",
                "stop": {
                    "reason": "patience",
                    "message": "no EMA improvement for 4 epochs",
                    "epoch": 9,
                },
                "epochs_completed": 10,
                "best_epoch": 5,
                "best_ema": 0.5,
            }
        )
    )
    history = read_training_history(fold)
    data = history.to_dict()
    assert data["num_epochs"] == 50
    assert data["status"] == "stopped_early"
    assert data["stop"]["reason"] == "patience"
    assert data["early_stopping"]["patience"] == 4
    assert data["early_stopping"]["window"] == [6, 9]
    assert data["eta_s"] == 0.0
    text = format_report(history)
    assert "stopped early: patience at epoch 9. no EMA improvement for 4 epochs" in text
    assert "epochs finished: 10 of 50" in text
    plot_history(history, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


def test_debug_json_fallback_gives_eta(logs: Any, tmp_path: Path, write_log: Any) -> None:
    fold = tmp_path / "fold_0"
    epochs = logs.make_epochs(0, 4)
    write_log(fold, epochs, start=datetime.now() - timedelta(seconds=100))
    (fold / "debug.json").write_text(json.dumps({"num_epochs": "20", "fold": "0", "device": "cpu"}))
    history = read_training_history(fold)
    assert history.num_epochs == 20
    assert history.settings_source == "debug.json"
    median = float(np.median([e.time_s for e in epochs]))
    assert history.eta_s() == pytest.approx(15 * median)
    assert "ETA (configured epochs):" in format_report(history)


def test_collapsing_label_flagged(logs: Any, tmp_path: Path, write_log: Any) -> None:
    fold = tmp_path / "fold_0"
    epochs = []
    for e in range(30):
        rv = 0.48 if e < 12 else max(0.0, 0.48 - 0.06 * (e - 11))
        epochs.append(logs.Epoch(e, -0.3, -0.25, (0.85, 0.9, round(rv, 4)), 0.01, 10.0))
    write_log(fold, epochs, start=datetime(2026, 3, 1, 9), done=True)
    history = read_training_history(fold)
    collapses = history.collapsing_labels()
    assert [(c.index, round(c.recent, 3)) for c in collapses] == [(2, 0.0)]
    assert collapses[0].peak == pytest.approx(0.48)
    text = format_report(history)
    assert "WARNING: label 'label 3' is collapsing: pseudo Dice 0.48" in text
    assert history.to_dict()["collapsing_labels"][0]["index"] == 2


def test_no_collapse_for_noise_or_never_learned() -> None:
    rng = np.random.default_rng(0)
    noisy = [(0.7 + rng.uniform(-0.1, 0.1), 0.02) for _ in range(40)]
    assert find_collapsing_labels(noisy, range(40)) == []


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("np.float32(0.8), np.float32(0.1)", (0.8, 0.1), id="numpy2"),
        pytest.param("0.8, 0.1", (0.8, 0.1), id="numpy1"),
        pytest.param("np.float64(0.0), np.float32(1.0)", (0.0, 1.0), id="numpy2-float64"),
        pytest.param("", (), id="empty"),
    ],
)
def test_parse_pseudo_dice(text: str, expected: tuple[float, ...]) -> None:
    assert parse_pseudo_dice(text) == expected


@pytest.mark.parametrize("text", ["np.float32(nan), 0.5", "nan, 0.5"])
def test_parse_pseudo_dice_nan(text: str) -> None:
    values = parse_pseudo_dice(text)
    assert math.isnan(values[0])
    assert values[1] == 0.5


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False, width=32), min_size=1, max_size=8))
def test_both_numpy_reprs_parse_to_same_values(values: list[float]) -> None:
    numpy2 = str([np.round(np.float32(v), decimals=4) for v in values])[1:-1]
    numpy1 = ", ".join(repr(float(np.round(np.float32(v), decimals=4))) for v in values)
    assert parse_pseudo_dice(numpy2) == pytest.approx(parse_pseudo_dice(numpy1), abs=1e-7)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=30), st.floats(0, 1))
def test_ema_properties(means: list[float], constant: float) -> None:
    ema = compute_ema(means)
    assert len(ema) == len(means)
    assert min(means) - 1e-12 <= min(ema)
    assert max(ema) <= max(means) + 1e-12
    assert compute_ema([constant] * len(means)) == pytest.approx([constant] * len(means))


def test_bad_value_names_file_and_line(tmp_path: Path) -> None:
    text = "2026-11-22 10:00:00.000001: Epoch 0 \n2026-11-22 10:00:01.000001: train_loss abc \n"
    with pytest.raises(InputError, match=r"log\.txt: line 2 must be a number in 'train_loss abc'"):
        parse_log_text(text, source="log.txt")


@pytest.mark.parametrize(
    "stamp", ["2026-13-01 10:00:00.000001", "2026-02-30 10:00:00", "2026-01-01 25:61:00"]
)
def test_impossible_timestamp_is_one_input_error(stamp: str) -> None:
    text = f"2026-11-22 10:00:00.000001: Epoch 0 \n{stamp}: train_loss 0.1 \n"
    with pytest.raises(InputError, match=r"log\.txt: line 2 must be a real date and time"):
        parse_log_text(text, source="log.txt")


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is my shopping list\nmilk\n",
        b'{"epoch": 1, "loss": 0.5}',
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ],
    ids=["text", "json", "binary"],
)
def test_file_that_is_not_an_nnunet_log_is_an_error_not_running(
    tmp_path: Path, content: bytes
) -> None:
    fold = tmp_path / "fold_0"
    fold.mkdir()
    (fold / "training_log_2026_1_1_00_00_00.txt").write_bytes(content)
    with pytest.raises(InputError, match=r"training_log_2026_1_1_00_00_00\.txt must be an nnU-Net"):
        read_training_history(fold)


def test_timestamp_without_microseconds() -> None:
    # datetime.__str__ omits microseconds when they are 0
    log = parse_log_text(
        "2026-11-22 10:00:00: Epoch 4 \n2026-11-22 10:00:00: Current learning rate: 0.00973 \n"
        "2026-11-22 10:00:05: train_loss -0.1234 \n2026-11-22 10:00:05: val_loss -0.2 \n"
        "2026-11-22 10:00:05: Pseudo dice [np.float32(0.8)] \n"
        "2026-11-22 10:00:05: Epoch time: 12.34 s \n"
    )
    (record,) = log.epochs
    assert (record.epoch, record.learning_rate, record.epoch_time_s) == (4, 0.00973, 12.34)


# --- watch ------------------------------------------------------------------------------------


def test_watch_refreshes_until_training_done(logs: Any, tmp_path: Path, write_log: Any) -> None:
    fold = tmp_path / "fold_0"
    epochs = logs.make_epochs(0, 5)
    writer = write_log(fold, epochs[:2], start=datetime.now() - timedelta(seconds=30))
    seen: list[int] = []
    sleeps: list[float] = []

    def on_update(history) -> None:  # type: ignore[no-untyped-def]
        seen.append(len(history.epochs))
        if len(seen) == 1:
            writer.epoch(epochs[2])
        elif len(seen) == 2:
            for ep in epochs[3:]:
                writer.epoch(ep)
            writer.done()

    final = watch_training(fold, on_update, interval_s=0.5, sleep=sleeps.append)
    assert seen == [2, 3, 6]
    assert sleeps == [0.5, 0.5]
    assert final.status == "completed"


def test_watch_cli_on_finished_run_returns(two_log_fold: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "w.json"
    assert main(["-i", str(two_log_fold), "--watch", "0.01", "--json", str(out)]) == 0
    assert len(json.loads(out.read_text())["epochs"]) == 12
    assert capsys.readouterr().out.count("epochs finished: 12") == 1


# --- errors -----------------------------------------------------------------------------------


def test_error_not_a_folder(tmp_path: Path, capsys) -> None:
    assert main(["-i", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnunet-ext log: error: -i/--input must be a folder")
    assert len(err.splitlines()) == 1


def test_error_no_logs_suggests_fold(tmp_path: Path, capsys) -> None:
    (tmp_path / "fold_0").mkdir()
    (tmp_path / "fold_3").mkdir()
    assert main(["-i", str(tmp_path)]) == 1
    assert "It has fold folders (fold_0, fold_3): pass one of them." in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "name", "message"),
    [
        pytest.param("--plot", "out.jpg", "--plot must be a .png file", id="plot-suffix"),
        pytest.param("--json", "out.txt", "--json must be a .json file", id="json-suffix"),
        pytest.param("--plot", "missing/out.png", "--plot folder does not exist", id="plot-folder"),
    ],
)
def test_error_bad_outputs_write_nothing(
    two_log_fold: Path, tmp_path: Path, capsys, flag: str, name: str, message: str
) -> None:
    out = tmp_path / "outs"
    out.mkdir()
    assert main(["-i", str(two_log_fold), flag, str(out / name)]) == 1
    assert message in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_usage_error_exit_2(capsys) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["--last", "x"])
    assert "usage:" in capsys.readouterr().err


# --- import hygiene ---------------------------------------------------------------------------


def test_import_and_help_stay_light() -> None:
    code = (
        "import sys, runpy\n"
        "import nnunet_ext.monitor, nnunet_ext.monitor.cli\n"
        "sys.argv = ['x', '--help']\n"
        "try:\n    runpy.run_module('nnunet_ext.monitor', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'nnunetv2', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "usage: nnunet-ext log" in result.stdout
    assert "HEAVY []" in result.stdout


def test_empty_log_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"empty\.txt must be an nnU-Net training log .*; got an empty file"
    ):
        parse_log_text("", source="empty.txt")
