"""End to end with real nnU-Net: CustomEpochs trains, stops early, resumes and predicts.

Covers issue 2's acceptance items 3-8 (item 2, registration, is in test_registration.py).
"""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from nnunet_workspace import BIN, FAST, NnunetWorkspace, check, epoch_lines, logs_text, read_record

from nnunet_ext.io import load_properties

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]


def test_trains_exactly_n_epochs(trained_fold):
    fold = trained_fold
    assert epoch_lines(fold) == ["Epoch 0", "Epoch 1", "Epoch 2"]
    record = read_record(fold)
    assert record["status"] == "completed"
    assert record["epochs_completed"] == 3
    assert record["settings"]["num_epochs"] == 3
    assert record["settings_sources"]["num_epochs"] == "env:nnUNet_n_epochs"
    assert record["settings"]["num_iterations_per_epoch"] == 2
    assert record["nnunetv2_version"].startswith("2.8")
    assert record["stop"] is None


def test_writes_final_checkpoint_and_npz_validation(trained_fold):
    fold = trained_fold
    assert (fold / "checkpoint_final.pth").is_file()
    assert not (fold / "checkpoint_latest.pth").exists()
    validation = fold / "validation"
    assert (validation / "heart_000.nii.gz").is_file()
    assert (validation / "heart_000.pkl").is_file()
    with np.load(validation / "heart_000.npz") as npz:
        probabilities = npz["probabilities"]
    assert probabilities.shape == (4, 16, 48, 48)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)


def test_settings_are_logged_in_training_log_and_debug_json(trained_fold):
    fold = trained_fold
    assert "num_epochs=3 (env:nnUNet_n_epochs)" in logs_text(fold)
    assert "nnunet_ext_settings" in (fold / "debug.json").read_text()


def test_predict_with_probabilities_writes_npz_and_pkl(predicted_test_set):
    prediction = predicted_test_set
    for case in ("heart_006", "heart_007"):
        assert (prediction / f"{case}.nii.gz").is_file()
        with np.load(prediction / f"{case}.npz") as npz:
            assert npz["probabilities"].shape == (4, 16, 48, 48)
        properties = load_properties(prediction / f"{case}.pkl")  # real nnU-Net pickle, safe loader
        assert properties["sitk_stuff"]["spacing"] == (1.0, 1.0, 2.5)


@pytest.fixture(scope="module")
def early_stop_story(workspace: NnunetWorkspace):
    """Stop early, then --c with the same settings, a changed epoch count and a larger patience."""
    trainer = "nnUNetTrainerCustomEpochs"
    fold = workspace.fold_dir(trainer)
    args = ("nnUNetv2_train", "501", "3d_fullres", "0", "-tr", trainer, "-device", "cpu", "--npz")
    env = {**FAST, "nnUNet_patience": "1", "nnUNet_min_delta": "1", "nnUNet_n_epochs": "40"}
    story = {"fold": fold}
    story["first"] = check(workspace.run(*args, **env))
    story["first_record"] = read_record(fold)
    story["first_epochs"] = epoch_lines(fold)
    final = fold / "checkpoint_final.pth"
    story["first_final_mtime"] = final.stat().st_mtime_ns
    story["same"] = check(workspace.run(*args, "--c", **env))
    story["same_epochs"] = epoch_lines(fold)
    story["same_record"] = read_record(fold)
    mtime = final.stat().st_mtime_ns
    story["changed"] = workspace.run(*args, "--c", **{**env, "nnUNet_n_epochs": "41"})
    story["changed_epochs"] = epoch_lines(fold)
    story["changed_final_untouched"] = final.stat().st_mtime_ns == mtime
    story["patient"] = check(workspace.run(*args, "--c", **{**env, "nnUNet_patience": "3"}))
    story["patient_record"] = read_record(fold)
    story["patient_epochs"] = epoch_lines(fold)
    return story


def test_early_stop_after_two_or_three_epochs(early_stop_story):
    record = early_stop_story["first_record"]
    assert record["status"] == "stopped_early"
    assert 2 <= record["epochs_completed"] <= 3
    assert record["stop"]["reason"] == "patience"
    assert record["settings"]["patience"] == 1
    assert record["settings"]["min_delta"] == 1.0
    assert 0 <= record["best_epoch"] < record["epochs_completed"]
    assert len(early_stop_story["first_epochs"]) == record["epochs_completed"]


def test_early_stop_ends_like_a_normal_run(early_stop_story):
    fold = early_stop_story["fold"]
    assert (fold / "checkpoint_final.pth").is_file()
    assert (fold / "validation" / "heart_000.npz").is_file()
    assert (fold / "validation" / "summary.json").is_file()
    text = logs_text(fold)
    assert "nnunet_ext: early stop after epoch" in text
    assert "has not improved by more than 1 for 1 epochs (patience 1)" in text
    assert (
        f"best epoch {early_stop_story['first_record']['best_epoch']} with EMA pseudo Dice" in text
    )


def test_continue_with_same_settings_trains_no_epoch(early_stop_story):
    assert early_stop_story["same_epochs"] == early_stop_story["first_epochs"]
    assert (
        early_stop_story["same_record"]["epochs_completed"]
        == early_stop_story["first_record"]["epochs_completed"]
    )
    assert early_stop_story["same_record"]["status"] == "stopped_early"


def test_continue_with_changed_epochs_is_refused(early_stop_story):
    changed = early_stop_story["changed"]
    assert changed.returncode != 0
    error = changed.stderr.strip().splitlines()[-1]
    assert error.startswith("nnunet_ext: error: nnUNet_n_epochs=41")
    assert "started with nnUNet_n_epochs=40" in error
    assert "Traceback" not in changed.stderr
    assert early_stop_story["changed_epochs"] == early_stop_story["same_epochs"]
    assert early_stop_story["changed_final_untouched"]


def test_continue_with_larger_patience_trains_on(early_stop_story):
    before = early_stop_story["first_record"]["epochs_completed"]
    record = early_stop_story["patient_record"]
    assert record["epochs_completed"] > before
    assert record["status"] == "stopped_early"
    assert record["stop"]["reason"] == "patience"
    assert early_stop_story["patient_epochs"][before] == f"Epoch {before}"


def test_bad_environment_value_is_rejected_before_training(workspace: NnunetWorkspace):
    result = workspace.run(
        "nnUNetv2_train",
        "501",
        "3d_fullres",
        "1",
        "-tr",
        "CustomEpochs",
        "-device",
        "cpu",
        nnUNet_n_epochs="80 epochs",
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "nnunet_ext: error: nnUNet_n_epochs must be a positive integer; got '80 epochs'. "
        "Example: nnUNet_n_epochs=80."
    )
    assert "Traceback" not in result.stderr
    assert not workspace.fold_dir("CustomEpochs", fold=1).exists()


def test_stop_file_ends_a_500_epoch_run_gracefully(workspace: NnunetWorkspace):
    trainer = "CustomEpochs_e500"  # a name that carries its settings
    fold = workspace.fold_dir(trainer)

    process = subprocess.Popen(
        [str(BIN / "nnUNetv2_train"), "501", "3d_fullres", "0", "-tr", trainer, "-device", "cpu"],
        env=workspace.env(**FAST),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while "Epoch 0" not in epoch_lines(fold) if fold.exists() else True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.5)
    (fold / "STOP").touch()
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    record = read_record(fold)
    assert record["status"] == "stopped_early"
    assert record["stop"]["reason"] == "stop_file"
    assert record["settings"]["num_epochs"] == 500
    assert record["settings_sources"]["num_epochs"] == "name:CustomEpochs_e500"
    assert record["epochs_completed"] <= 2
    assert (fold / "checkpoint_final.pth").is_file()
    assert not (fold / "STOP").exists()  # consumed, so --c can continue


def test_a_seeded_run_with_augmentation_in_process_is_reproducible(workspace: NnunetWorkspace):
    """Two runs with ``nnUNet_seed=7`` and ``nnUNet_n_proc_DA=0`` give bit-identical weights
    (the trainer names differ only to get two result folders); with an augmentation worker
    the log warns that the run is not reproducible."""
    import torch

    env = {**FAST, "nnUNet_n_epochs": "2", "nnUNet_seed": "7", "nnUNet_n_proc_DA": "0"}
    folds = []
    for trainer in ("CustomEpochs_e2", "nnUNetTrainerCustomEpochs_e2"):
        args = ("nnUNetv2_train", "501", "3d_fullres", "0", "-tr", trainer, "-device", "cpu")
        check(workspace.run(*args, **env))
        folds.append(workspace.fold_dir(trainer))
    first, second = (
        torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)[
            "network_weights"
        ]
        for fold in folds
    )
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    record = read_record(folds[0])
    assert record["settings"]["seed"] == 7
    assert record["settings_sources"]["seed"] == "env:nnUNet_seed"
    assert "seed=7 (env:nnUNet_seed)" in logs_text(folds[0])
    assert "not reproducible" not in logs_text(folds[0])
    trainer = "CustomEpochs_e1"
    args = ("nnUNetv2_train", "501", "3d_fullres", "0", "-tr", trainer, "-device", "cpu")
    check(workspace.run(*args, **{**env, "nnUNet_n_epochs": "1", "nnUNet_n_proc_DA": "1"}))
    warned = logs_text(workspace.fold_dir(trainer))
    assert "nnUNet_seed=7 seeds the network's initialisation" in warned
    assert "this run is not reproducible" in warned
