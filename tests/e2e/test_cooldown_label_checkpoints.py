"""Issue 16 end to end with real nnU-Net: cooldown (interrupted and resumed with --c), per-label
checkpoints predicted by stock nnUNetv2_predict, and nnunet-ext validate next to validation/.

One training story serves every test here: ``-tr CustomEpochs_c3_l1`` (cooldown 3 epochs and
label checkpoints from the name) with ``nnUNet_patience=1 nnUNet_min_delta=1``, so the stop rule
fires before epoch 2 every time; the first session is killed in the second cooldown epoch and
``--c`` finishes the cooldown.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from nnunet_workspace import BIN, DATASET_NAME, FAST, NnunetWorkspace, check, logs_text, read_record

from nnunet_ext.io import read_labels
from nnunet_ext.io.checkpoints import read_checkpoint
from nnunet_ext.io.models import check_checkpoint_belongs
from nnunet_ext.monitor import format_report, read_training_history
from nnunet_ext.trainers.cooldown import CooldownPlan

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]

TRAINER = "CustomEpochs_c3_l1"
ENV = {**FAST, "nnUNet_patience": "1", "nnUNet_min_delta": "1", "nnUNet_n_epochs": "40"}
_COOLDOWN_LINE = re.compile(r"cooldown epoch (\d+) of (\d+): learning rate (\S+) -> (\S+)")


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def story(workspace: NnunetWorkspace, tmp_path_factory: pytest.TempPathFactory) -> dict:
    fold = workspace.fold_dir(TRAINER)
    args = ["nnUNetv2_train", "501", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu", "--npz"]
    out = tmp_path_factory.mktemp("cooldown")
    with (out / "first.log").open("w") as log:
        process = subprocess.Popen(
            [str(BIN / args[0]), *args[1:]],
            env=workspace.env(**ENV),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Epoch 3 starts after epoch 2 (the first cooldown epoch) wrote checkpoint_latest.
        deadline = time.monotonic() + 900
        while "Epoch 3" not in (logs_text(fold) if fold.exists() else ""):
            assert process.poll() is None, (out / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    story: dict = {"fold": fold, "out": out}
    story["killed_record"] = read_record(fold)
    story["killed_latest"] = (fold / "checkpoint_latest.pth").is_file()
    story["killed_final"] = (fold / "checkpoint_final.pth").is_file()
    story["resumed"] = check(workspace.run(*args, "--c", **ENV))
    story["record"] = read_record(fold)
    return story


def test_stop_rule_fires_then_exactly_three_cooldown_epochs(story):
    record = story["record"]
    assert record["schema_version"] == 2
    assert record["status"] == "stopped_early"
    assert record["stop"]["reason"] == "patience"
    assert record["stop"]["epoch"] == 1
    cooldown = record["cooldown"]
    assert (cooldown["start_epoch"], cooldown["epochs"], cooldown["end_epoch"]) == (2, 3, 5)
    assert cooldown["requested_epochs"] == 3
    assert cooldown["completed"] is True
    assert cooldown["epochs_done"] == 3
    assert cooldown["ended_by"] is None
    assert record["settings"]["cooldown_epochs"] == 3
    assert record["settings_sources"]["cooldown_epochs"] == f"name:{TRAINER}"
    assert record["epochs_completed"] == 5
    history = read_training_history(story["fold"])
    assert [e.epoch for e in history.epochs] == [0, 1, 2, 3, 4]
    assert (story["fold"] / "checkpoint_final.pth").is_file()
    assert (story["fold"] / "validation" / "summary.json").is_file()


def test_cooldown_learning_rate_falls_to_zero_on_the_poly_curve(story):
    fold = story["fold"]
    plan = CooldownPlan.from_dict(story["record"]["cooldown"])
    history = read_training_history(fold)
    logged = {e.epoch: e.learning_rate for e in history.epochs}
    # the schedule's rate for epoch 2 of 40, as nnU-Net's PolyLRScheduler computes it
    assert plan.start_lr == pytest.approx(0.01 * (1 - 2 / 40) ** 0.9)
    cooldown_rates = [logged[2], logged[3], logged[4]]
    assert logged[1] > cooldown_rates[0] > cooldown_rates[1] > cooldown_rates[2] > 0
    for epoch in (2, 3, 4):  # nnU-Net logs the first iteration's rate, rounded to 5 decimals
        assert logged[epoch] == pytest.approx(round(plan.lr(epoch, 0), 5), abs=1e-9)
    lines = {int(m[1]): m for m in _COOLDOWN_LINE.finditer(logs_text(fold))}
    assert sorted(lines) == [1, 2, 3]
    assert all(m[2] == "3" for m in lines.values())
    firsts = [float(lines[k][3]) for k in (1, 2, 3)]
    lasts = [float(lines[k][4]) for k in (1, 2, 3)]
    assert firsts == sorted(firsts, reverse=True)
    assert all(last < first for first, last in zip(firsts, lasts, strict=True))
    assert lasts[-1] == 0.0  # the very last cooldown iteration runs at learning rate 0


def test_training_log_and_monitor_show_the_cooldown(story):
    text = logs_text(story["fold"])
    assert "nnunet_ext: early stop after epoch 1" in text
    assert "nnunet_ext: cooldown: 3 more epochs (epochs 2-4)" in text
    history = read_training_history(story["fold"])
    assert history.cooldown_window == (2, 4)
    report = format_report(history)
    assert "cooldown (c): epochs 2-4 after the patience stop" in report
    assert "3 of 3 done" in report
    assert re.search(r"^\s+3c\s", report, re.MULTILINE)


def test_continue_mid_cooldown_resumes_the_cooldown(story):
    killed = story["killed_record"]
    assert killed["status"] == "running"
    assert killed["cooldown"]["start_epoch"] == 2
    assert story["killed_latest"]  # written at the end of each cooldown epoch
    assert not story["killed_final"]
    second_log = sorted(story["fold"].glob("training_log_*.txt"))[-1].read_text()
    assert "nnunet_ext: resuming the cooldown at epoch 3" in second_log
    assert re.findall(r"Epoch (\d+)", second_log) == ["3", "4"]
    assert "cooldown epoch 2 of 3" in second_log
    assert "cooldown epoch 3 of 3" in second_log
    assert "early stop after epoch" not in second_log  # the stop rule is not asked again


def test_label_checkpoints_are_weights_only_and_recorded(story):
    torch = pytest.importorskip("torch")
    from nnunet_ext.trainers.checkpoints import load_checkpoint

    fold = story["fold"]
    labels = story["record"]["labels"]
    assert [label["name"] for label in labels] == ["myocardium", "LV", "RV"]
    written = [label for label in labels if label["checkpoint"]]
    assert written
    for label in labels:
        if label["best_epoch"] is not None:
            assert label["checkpoint"] == f"checkpoint_best_{label['name']}.pth"
            assert label["checkpoint_epoch"] == label["best_epoch"]
            assert 0.0 <= label["best_ema"] <= 1.0
    for label in written:
        checkpoint = torch.load(fold / label["checkpoint"], map_location="cpu", weights_only=False)
        assert "optimizer_state" not in checkpoint
        assert checkpoint["trainer_name"] == TRAINER
        assert checkpoint["init_args"]["configuration"] == "3d_fullres"
        assert checkpoint["nnunet_ext"]["label"] == label["name"]
        assert checkpoint["nnunet_ext"]["epoch"] == label["best_epoch"]
    before = torch.load(fold / "checkpoint_before_cooldown.pth", weights_only=False)
    assert before["nnunet_ext"] == {"before_cooldown": True, "epoch": 1}
    # issue 23: every checkpoint of the fold (final, best, per label, before the cooldown) is
    # data: the torch-free check passes, it belongs to its folder, it loads weights-only
    files = sorted(fold.glob("*.pth"))
    assert {f"checkpoint_best_{label['name']}.pth" for label in written} | {
        "checkpoint_final.pth",
        "checkpoint_before_cooldown.pth",
    } <= {f.name for f in files}
    model_dir = fold.parent
    plans = json.loads((model_dir / "plans.json").read_text())
    dataset_json = json.loads((model_dir / "dataset.json").read_text())
    for file in files:
        checked = read_checkpoint(file)
        assert checked.unsafe_globals == ()
        check_checkpoint_belongs(checked, model_dir, plans=plans, dataset_json=dataset_json)
        loaded = load_checkpoint(file)
        shapes = {name: tuple(t.shape) for name, t in loaded["network_weights"].items()}
        assert checked.weight_shapes == shapes, file.name


def test_label_checkpoint_predicts_with_stock_nnunetv2_predict(story, workspace):
    written = [label["checkpoint"] for label in story["record"]["labels"] if label["checkpoint"]]
    chosen = "checkpoint_best_RV.pth" if "checkpoint_best_RV.pth" in written else written[0]
    out = story["out"] / "predicted_best_label"
    check(
        workspace.run(
            "nnUNetv2_predict",
            "-i",
            str(workspace.raw / DATASET_NAME / "imagesTs"),
            "-o",
            str(out),
            "-d",
            "501",
            "-c",
            "3d_fullres",
            "-f",
            "0",
            "-tr",
            TRAINER,
            "-chk",
            chosen,
            "-device",
            "cpu",
            "-npp",
            "1",
            "-nps",
            "1",
        )
    )
    for case in ("heart_006", "heart_007"):
        labels = read_labels(out / f"{case}.nii.gz").array
        assert labels.shape == (16, 48, 48)
        assert set(np.unique(labels)) <= {0, 1, 2, 3}


@pytest.fixture(scope="module")
def validated(story, workspace):
    fold = story["fold"]
    before = _hashes(fold / "validation")
    logs_before = sorted(p.name for p in fold.glob("training_log_*.txt"))
    result = subprocess.run(
        [
            str(BIN / "nnunet-ext"),
            "validate",
            "-i",
            str(fold),
            "--checkpoint",
            "checkpoint_before_cooldown",
            "checkpoint_final.pth",
            "--npz",
        ],
        env=workspace.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "result": result,
        "before": before,
        "after": _hashes(fold / "validation"),
        "logs_before": logs_before,
        "logs_after": sorted(p.name for p in fold.glob("training_log_*.txt")),
    }


def test_validate_writes_its_own_folders_and_leaves_validation_untouched(story, validated):
    result = validated["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert validated["after"] == validated["before"]  # byte-identical
    assert validated["logs_after"] == validated["logs_before"]
    fold = story["fold"]
    for stem in ("checkpoint_before_cooldown", "checkpoint_final"):
        folder = fold / f"validation_{stem}"
        assert (folder / "summary.json").is_file()
        assert (folder / "heart_000.nii.gz").is_file()
        assert (folder / "dataset.json").read_bytes() == (fold.parent / "dataset.json").read_bytes()
        with np.load(folder / "heart_000.npz") as npz:
            assert npz["probabilities"].shape == (4, 16, 48, 48)
    assert not list(fold.glob(".nnunet_ext-validate-*"))
    # the final checkpoint validated again gives nnU-Net's own numbers
    assert (fold / "validation_checkpoint_final" / "heart_000.nii.gz").read_bytes() == (
        fold / "validation" / "heart_000.nii.gz"
    ).read_bytes()
    table = result.stdout
    assert "checkpoint_before_cooldown" in table
    assert "checkpoint_final" in table
    for name in ("myocardium", "LV", "RV", "mean"):
        assert re.search(rf"^{name}\s+\S+\s+\S+$", table, re.MULTILINE), table


def test_validation_folder_of_a_checkpoint_is_an_ensemble_member(story, validated, workspace):
    fold = story["fold"]
    out = story["out"] / "fused"
    result = subprocess.run(
        [
            str(BIN / "nnunet-ext"),
            "ensemble",
            "-i",
            str(fold / "validation_checkpoint_final"),
            str(fold / "validation_checkpoint_before_cooldown"),
            "-o",
            str(out),
        ],
        env=workspace.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_labels(out / "heart_000.nii.gz").array.shape == (16, 48, 48)
    # one member alone gives back its own segmentation
    single = story["out"] / "single"
    result = subprocess.run(
        [
            str(BIN / "nnunet-ext"),
            "ensemble",
            "-i",
            str(fold / "validation_checkpoint_final"),
            "-o",
            str(single),
        ],
        env=workspace.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(
        read_labels(single / "heart_000.nii.gz").array,
        read_labels(fold / "validation" / "heart_000.nii.gz").array,
    )
