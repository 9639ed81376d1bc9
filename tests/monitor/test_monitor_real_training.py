"""The monitor on the log of a real (tiny, CPU) nnU-Net training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_ext.monitor import read_training_history
from nnunet_ext.monitor.cli import main


@pytest.fixture
def real_fold(trained_fold: Path) -> Path:
    """The shared real 3-epoch CustomEpochs training (tests/conftest.py)."""
    return trained_fold


@pytest.mark.nnunet
def test_real_training_log(real_fold: Path, tmp_path: Path) -> None:
    history = read_training_history(real_fold)
    assert [e.epoch for e in history.epochs] == [0, 1, 2]
    assert history.label_names == ("myocardium", "LV", "RV")
    assert history.num_epochs == 3
    assert history.settings_source == "nnunet_ext_training.json"
    assert history.status == "completed"
    for record in history.epochs:
        assert len(record.pseudo_dice) == 3
        assert all(0.0 <= v <= 1.0 or v != v for v in record.pseudo_dice)
        assert record.train_loss is not None
        assert record.val_loss is not None
        assert record.learning_rate is not None
        assert 0 < record.learning_rate <= 0.01
        assert record.epoch_time_s is not None
        assert record.epoch_time_s > 0
    best = history.best
    assert best is not None
    assert best.logged_best_ema is not None
    # nnU-Net logs the best EMA rounded to 4 decimals; our recomputation agrees
    assert best.ema_pseudo_dice == pytest.approx(best.logged_best_ema, abs=2e-4)

    out_json, out_png = tmp_path / "log.json", tmp_path / "log.png"
    assert main(["-i", str(real_fold), "--json", str(out_json), "--plot", str(out_png)]) == 0
    report = json.loads(out_json.read_text())
    assert report["num_epochs"] == 3
    assert len(report["epochs"]) == 3
    assert report["stopped"] is True
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
