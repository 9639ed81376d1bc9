"""Shared test set-up: a clean environment for every test."""

from __future__ import annotations

import pytest

# Settings our trainers read; a developer's shell must not leak them into tests.
_TRAINING_VARS = (
    "nnUNet_n_epochs",
    "nnUNet_iters_per_epoch",
    "nnUNet_val_iters_per_epoch",
    "nnUNet_patience",
    "nnUNet_min_delta",
    "nnUNet_min_epochs",
    "nnUNet_target_dice",
)


@pytest.fixture(autouse=True)
def _clean_training_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _TRAINING_VARS:
        monkeypatch.delenv(var, raising=False)
