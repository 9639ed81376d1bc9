"""The torch side of export: the stock-trainer rule and slim, deterministic checkpoints."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs_NoMirroring import (  # noqa: E501
    nnUNetTrainer_250epochs_NoMirroring,
)

from nnunet_ext.export.engine import (
    INFERENCE_METHODS,
    REMOVED_KEYS,
    find_trainer_class,
    slim_checkpoint,
    stock_trainer,
    stock_trainer_name,
)
from nnunet_ext.trainers.custom_epochs import CustomEpochs, nnUNetTrainerCustomEpochs
from nnunet_ext.trainers.mixins import EpochControlMixin
from nnunet_ext.trainers.named import named_trainer


class MixinOnVariant(EpochControlMixin, nnUNetTrainer_250epochs_NoMirroring):
    """Our mixin on a stock variant: exported as that variant."""


def test_our_trainers_map_to_the_nearest_stock_trainer():
    assert stock_trainer(CustomEpochs) is nnUNetTrainer
    assert stock_trainer(nnUNetTrainerCustomEpochs) is nnUNetTrainer
    assert stock_trainer(named_trainer("CustomEpochs_e250_p30")) is nnUNetTrainer
    assert stock_trainer(MixinOnVariant) is nnUNetTrainer_250epochs_NoMirroring
    assert stock_trainer(nnUNetTrainer_250epochs_NoMirroring) is nnUNetTrainer_250epochs_NoMirroring


def test_names_are_looked_up_as_nnunet_predict_does():
    assert stock_trainer_name("CustomEpochs") == "nnUNetTrainer"
    assert stock_trainer_name("CustomEpochs_e2_p1") == "nnUNetTrainer"
    assert find_trainer_class("CustomEpochs") is CustomEpochs
    with pytest.raises(ValueError, match="'NoSuchTrainer' must be one that nnU-Net finds"):
        stock_trainer_name("NoSuchTrainer")


@pytest.mark.parametrize("method", INFERENCE_METHODS)
def test_a_class_that_changes_inference_is_refused_naming_class_and_method(method: str):
    changed = type("ChangesInference", (EpochControlMixin, nnUNetTrainer), {method: lambda: None})
    sub = type("SubOfIt", (changed,), {})
    with pytest.raises(ValueError, match=rf"SubOfIt .*ChangesInference overrides {method}"):
        stock_trainer(sub)


def test_training_only_overrides_are_exported():
    # EpochControlMixin overrides __init__, load_checkpoint, on_train_start, on_epoch_end and
    # run_training; none of them is inference-relevant
    own = {name for name in vars(EpochControlMixin) if name in vars(nnUNetTrainer)}
    assert {"run_training", "load_checkpoint", "on_epoch_end"} <= own
    assert not own & set(INFERENCE_METHODS)


def _checkpoint(weights: list[float], trainer: str = "CustomEpochs") -> dict[str, object]:
    net = torch.nn.Linear(len(weights), 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([weights]))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.ones(len(weights))).sum().backward()
    optimizer.step()
    return {
        "network_weights": net.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "grad_scaler_state": None,
        "trainer_name": trainer,
        "init_args": {"configuration": "3d_fullres", "device": torch.device("cpu")},
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "current_epoch": 3,
    }


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-10, 10, width=32), min_size=1, max_size=8))
def test_slim_checkpoint_drops_training_state_keeps_weights_and_is_deterministic(
    tmp_path_factory: pytest.TempPathFactory, weights: list[float]
):
    source = tmp_path_factory.mktemp("ckpt") / "checkpoint_final.pth"
    original = _checkpoint(weights)
    torch.save(original, source)
    first = slim_checkpoint(source, expected_trainer="CustomEpochs", trainer_name="nnUNetTrainer")
    second = slim_checkpoint(source, expected_trainer="CustomEpochs", trainer_name="nnUNetTrainer")
    assert first.data == second.data
    assert set(first.removed_bytes) == set(REMOVED_KEYS)
    assert first.original_size == source.stat().st_size
    slim = torch.load(io.BytesIO(first.data), weights_only=False)
    assert not set(REMOVED_KEYS) & set(slim)
    assert slim["trainer_name"] == "nnUNetTrainer"
    assert slim["inference_allowed_mirroring_axes"] == (0, 1, 2)
    for key, value in original["network_weights"].items():  # type: ignore[attr-defined]
        assert torch.equal(slim["network_weights"][key], value)


def test_slim_checkpoint_refuses_another_trainer_or_a_non_checkpoint(tmp_path: Path):
    source = tmp_path / "checkpoint_final.pth"
    torch.save(_checkpoint([1.0], trainer="Other"), source)
    with pytest.raises(ValueError, match=r"trainer_name must be 'CustomEpochs'.*got 'Other'"):
        slim_checkpoint(source, expected_trainer="CustomEpochs", trainer_name="nnUNetTrainer")
    source.write_bytes(b"not a checkpoint")
    with pytest.raises(
        ValueError, match=r"checkpoint_final\.pth must be a complete PyTorch checkpoint"
    ):
        slim_checkpoint(source, expected_trainer="CustomEpochs", trainer_name="nnUNetTrainer")
