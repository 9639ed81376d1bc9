"""EpochControlMixin on another nnU-Net trainer variant, constructed for real (no training)."""

from __future__ import annotations

import inspect
import json

import pytest

torch = pytest.importorskip("torch")

from nnunetv2.training.nnUNetTrainer.variants.data_augmentation import (  # noqa: E402
    nnUNetTrainerDA5 as da5,  # noqa: N813
)

from nnunet_ext.trainers import EpochControlMixin  # noqa: E402
from nnunet_ext.trainers.settings import SettingsError  # noqa: E402


class nnUNetTrainerDA5EarlyStopTest(EpochControlMixin, da5.nnUNetTrainerDA5_10epochs):  # noqa: N801
    """The mixin example of docs/how-to/early-stopping.md, on a variant with its own num_epochs."""


def _construct(workspace, monkeypatch, fold=0):
    monkeypatch.setenv("nnUNet_results", str(workspace.results))
    monkeypatch.setenv("nnUNet_preprocessed", str(workspace.preprocessed))
    base = workspace.preprocessed / "Dataset501_SyntheticHeart"
    plans = json.loads((base / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    dataset_json = json.loads((base / "dataset.json").read_text())
    return nnUNetTrainerDA5EarlyStopTest(
        plans, "3d_fullres", fold, dataset_json, torch.device("cpu")
    )


@pytest.mark.nnunet
def test_mixin_controls_epochs_of_any_variant(workspace, monkeypatch):
    monkeypatch.setenv("nnUNet_n_epochs", "7")
    monkeypatch.setenv("nnUNet_patience", "3")
    trainer = _construct(workspace, monkeypatch)
    assert isinstance(trainer, da5.nnUNetTrainerDA5)
    assert trainer.num_epochs == 7  # not the variant's 10
    assert trainer.nnunet_ext_settings.patience == 3
    assert list(inspect.signature(trainer.__init__).parameters) == [
        "plans",
        "configuration",
        "fold",
        "dataset_json",
        "device",
    ]
    assert trainer.my_init_kwargs["configuration"] == "3d_fullres"
    # the variant's own augmentation is kept
    assert type(trainer).get_training_transforms is da5.nnUNetTrainerDA5.get_training_transforms


@pytest.mark.nnunet
def test_bad_setting_fails_before_nnunet_creates_anything(workspace, monkeypatch):
    monkeypatch.setenv("nnUNet_patience", "soon")
    model = workspace.results / "Dataset501_SyntheticHeart"
    fold = model / "nnUNetTrainerDA5EarlyStopTest__nnUNetPlans__3d_fullres" / "fold_1"
    with pytest.raises(
        SettingsError, match="nnUNet_patience must be a positive integer; got 'soon'"
    ):
        _construct(workspace, monkeypatch, fold=1)
    assert not fold.exists()


def test_label_names_follow_nnunets_pseudo_dice_order():
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    from nnunet_ext.trainers.label_tracking import checkpoint_names, label_names

    labels = {"background": 0, "RV": 3, "myocardium": 1, "LV": 2}
    assert label_names(LabelManager(labels, None), {"labels": labels}) == [
        "myocardium",
        "LV",
        "RV",
    ]
    regions = {"background": 0, "whole heart": [1, 2, 3], "cavities": [2, 3], "RV": 3}
    manager = LabelManager(regions, [1, 2, 3])
    names = label_names(manager, {"labels": regions})
    assert names == ["whole heart", "cavities", "RV"]
    assert checkpoint_names(names) == [
        "checkpoint_best_whole_heart.pth",
        "checkpoint_best_cavities.pth",
        "checkpoint_best_RV.pth",
    ]
    assert checkpoint_names(["a b", "a/b", "c"]) == [
        "checkpoint_best_a_b_1.pth",
        "checkpoint_best_a_b_2.pth",
        "checkpoint_best_c.pth",
    ]
