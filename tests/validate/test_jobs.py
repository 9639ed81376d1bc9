"""nnunet-ext validate: input checks before any work, output names, the side-by-side table."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from nnunet_ext.validate import plan_validation, read_validation_dice
from nnunet_ext.validate.cli import main
from nnunet_ext.validate.jobs import format_side_by_side, output_folder_name


def _fold(tmp_path: Path, *, checkpoints=("checkpoint_final.pth",), previous_stage=None) -> Path:
    model = tmp_path / "results" / "Dataset501_X" / "CustomEpochs__nnUNetPlans__3d_fullres"
    fold = model / "fold_0"
    fold.mkdir(parents=True)
    config = {
        "data_identifier": "x",
        "patch_size": [16, 48, 48],
        "architecture": {"network_class_name": "PlainConvUNet", "arch_kwargs": {}},
    }
    if previous_stage:
        config["previous_stage"] = previous_stage
    (model / "plans.json").write_text(
        json.dumps(
            {
                "dataset_name": "Dataset501_X",
                "image_reader_writer": "SimpleITKIO",
                "configurations": {"3d_fullres": config},
            }
        )
    )
    (model / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "MRI"},
                "labels": {"background": 0, "LV": 1, "RV": 2},
                "file_ending": ".nii.gz",
            }
        )
    )
    for name in checkpoints:
        checkpoint = {
            "network_weights": {"conv.weight": torch.zeros(1)},
            "trainer_name": "CustomEpochs",
            "init_args": {"configuration": "3d_fullres"},
        }
        torch.save(checkpoint, fold / name)
    (tmp_path / "pre" / "Dataset501_X" / "gt_segmentations").mkdir(parents=True)
    return fold


def _env(tmp_path: Path) -> dict[str, str]:
    return {"nnUNet_preprocessed": str(tmp_path / "pre")}


def test_output_folder_is_never_validation():
    assert output_folder_name("checkpoint_best.pth") == "validation_checkpoint_best"
    assert output_folder_name("checkpoint_best_RV") == "validation_checkpoint_best_RV"


def test_jobs_per_fold_and_checkpoint(tmp_path):
    fold = _fold(tmp_path, checkpoints=("checkpoint_final.pth", "checkpoint_best_RV.pth"))
    jobs = plan_validation(
        [fold, fold],
        ["checkpoint_final", "checkpoint_best_RV.pth", "checkpoint_final.pth"],
        npz=True,
        environ=_env(tmp_path),
    )
    assert [(j.checkpoint.name, j.output_dir.name, j.done) for j in jobs] == [
        ("checkpoint_final.pth", "validation_checkpoint_final", False),
        ("checkpoint_best_RV.pth", "validation_checkpoint_best_RV", False),
    ]


def test_complete_output_is_kept_unless_overwrite(tmp_path):
    fold = _fold(tmp_path)
    out = fold / "validation_checkpoint_final"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    env = _env(tmp_path)
    assert plan_validation([fold], ["checkpoint_final"], npz=False, environ=env)[0].done
    # --npz wanted but no .npz there: redo
    assert not plan_validation([fold], ["checkpoint_final"], npz=True, environ=env)[0].done
    (out / "a.npz").write_bytes(b"")
    assert plan_validation([fold], ["checkpoint_final"], npz=True, environ=env)[0].done
    assert not plan_validation([fold], ["checkpoint_final"], npz=True, overwrite=True, environ=env)[
        0
    ].done


def test_missing_checkpoint_lists_what_the_fold_has(tmp_path):
    fold = _fold(tmp_path, checkpoints=("checkpoint_final.pth", "checkpoint_best.pth"))
    with pytest.raises(
        FileNotFoundError,
        match=re.escape(
            "checkpoint_best_RV.pth' not found; this fold has checkpoint_best.pth, "
            "checkpoint_final.pth"
        ),
    ):
        plan_validation([fold], ["checkpoint_best_RV"], npz=False, environ=_env(tmp_path))


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        ("model_dir", "must be nnU-Net fold folders named fold_<k>.*It has fold_0: pass those"),
        ("no_plans", "plans.json not found"),
        ("no_preprocessed", "nnUNet_preprocessed must be set"),
        ("wrong_preprocessed", "gt_segmentations not found"),
        ("cascade", "cascade configurations"),
        ("path_in_name", "checkpoints must be file names"),
    ],
)
def test_bad_inputs_fail_before_any_work(tmp_path, setup, match):
    fold = _fold(tmp_path, previous_stage="3d_lowres" if setup == "cascade" else None)
    env = _env(tmp_path)
    target, checkpoints = fold, ["checkpoint_final"]
    if setup == "model_dir":
        target = fold.parent
    elif setup == "no_plans":
        (fold.parent / "plans.json").unlink()
    elif setup == "no_preprocessed":
        env = {}
    elif setup == "wrong_preprocessed":
        env = {"nnUNet_preprocessed": str(tmp_path)}
    elif setup == "path_in_name":
        checkpoints = ["../checkpoint_final.pth"]
    with pytest.raises((ValueError, FileNotFoundError, NotADirectoryError), match=match):
        plan_validation([target], checkpoints, npz=False, environ=env)


def test_cli_error_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    fold = _fold(tmp_path)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    before = sorted(p.name for p in fold.iterdir())
    assert main(["-i", str(fold), "--checkpoint", "checkpoint_best"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("nnunet-ext validate: error: checkpoint ")
    assert sorted(p.name for p in fold.iterdir()) == before


def test_dice_is_read_with_label_names(tmp_path):
    fold = _fold(tmp_path)
    out = fold / "validation_checkpoint_final"
    out.mkdir()
    # nnU-Net writes NaN as a bare token
    (out / "summary.json").write_text(
        '{"foreground_mean": {"Dice": 0.5}, "mean": {"1": {"Dice": 0.9}, "2": {"Dice": NaN}},'
        ' "metric_per_case": []}'
    )
    dice = read_validation_dice(out)
    assert dice["LV"] == 0.9
    assert math.isnan(dice["RV"])
    assert dice["mean"] == 0.5
    (out / "summary.json").write_text("{}")
    with pytest.raises(ValueError, match=r"not an nnU-Net summary\.json"):
        read_validation_dice(out)


def test_side_by_side_averages_folds_ignoring_nan():
    text = format_side_by_side(
        {
            "m/fold_0": {"final": {"RV": 0.0, "mean": 0.5}, "best_RV": {"RV": 0.6, "mean": 0.5}},
            "m/fold_1": {
                "final": {"RV": math.nan, "mean": 0.7},
                "best_RV": {"RV": 0.4, "mean": 0.6},
            },
        }
    )
    blocks = text.split("\n\n")
    assert len(blocks) == 3
    assert blocks[2].splitlines() == [
        "mean over 2 folds   final  best_RV",
        "RV                 0.0000   0.5000",
        "mean               0.6000   0.5500",
    ]
    assert "nan" in blocks[1]
