"""Issue 23 with real nnU-Net: every checkpoint ``nnUNetv2_train`` writes is data, never code.

The session fixtures train CustomEpochs 3d_fullres folds 0 and 1 and 2d folds 0 and 1; every
``*.pth`` in those fold folders (``checkpoint_final.pth``, ``checkpoint_best.pth``, ...) must pass
the torch-free check, belong to its model folder, and load with ``torch.load(weights_only=True)``
giving the tensors the check reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_ext.io.checkpoints import read_checkpoint
from nnunet_ext.io.models import check_checkpoint_belongs

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]


def _checkpoints(trained_fold: Path, ensemble_models: dict[str, Path]) -> list[Path]:
    folds = {trained_fold, *(f for m in ensemble_models.values() for f in m.glob("fold_*"))}
    files = sorted(p for fold in folds for p in fold.glob("*.pth"))
    # 3d_fullres folds 0 and 1, 2d folds 0 and 1: each wrote at least checkpoint_final.pth
    wanted = {
        f"CustomEpochs__nnUNetPlans__{c}/fold_{k}/checkpoint_final.pth"
        for c in ("3d_fullres", "2d")
        for k in (0, 1)
    }
    assert wanted <= {str(p.relative_to(p.parent.parent.parent)) for p in files}
    return files


def test_every_trained_checkpoint_passes_the_check_and_belongs_to_its_folder(
    trained_fold, ensemble_models
):
    for file in _checkpoints(trained_fold, ensemble_models):
        model_dir = file.parent.parent
        checkpoint = read_checkpoint(file)
        assert checkpoint.unsafe_globals == ()
        assert checkpoint.source == str(file)
        assert checkpoint.trainer_name == "CustomEpochs"
        assert checkpoint.configuration == model_dir.name.split("__")[2]
        assert checkpoint.weight_shapes
        check_checkpoint_belongs(
            checkpoint,
            model_dir,
            plans=json.loads((model_dir / "plans.json").read_text()),
            dataset_json=json.loads((model_dir / "dataset.json").read_text()),
        )


def test_every_trained_checkpoint_loads_weights_only_with_the_checked_shapes(
    trained_fold, ensemble_models
):
    torch = pytest.importorskip("torch")
    from nnunet_ext.trainers.checkpoints import load_checkpoint

    for file in _checkpoints(trained_fold, ensemble_models):
        loaded = load_checkpoint(file)
        weights = loaded["network_weights"]
        assert all(isinstance(t, torch.Tensor) for t in weights.values())
        assert read_checkpoint(file).weight_shapes == {
            k: tuple(t.shape) for k, t in weights.items()
        }
        assert loaded["trainer_name"] == "CustomEpochs"
