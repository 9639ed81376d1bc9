"""`export_bundle` input checks on small model folders made in code (no training)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from nnunet_ext.export import export_bundle, verify_bundle
from nnunet_ext.synthetic import minimal_plans

DATASET = "Dataset501_SyntheticHeart"


def model_folder(results: Path, trainer: str, configuration: str = "3d_fullres") -> Path:
    """A model folder with one fold whose checkpoint holds a tiny network and optimizer state."""
    folder = results / DATASET / f"{trainer}__nnUNetPlans__{configuration}"
    (folder / "fold_0").mkdir(parents=True)
    plans = minimal_plans(DATASET)
    architecture = {"network_class_name": "PlainConvUNet", "arch_kwargs": {}}
    plans["configurations"] = {
        configuration: {"patch_size": [8, 8, 8], "architecture": architecture}
    }
    (folder / "plans.json").write_text(json.dumps(plans))
    labels = {"background": 0, "myocardium": 1}
    dataset = {"labels": labels, "channel_names": {"0": "MRI"}, "file_ending": ".nii.gz"}
    (folder / "dataset.json").write_text(json.dumps(dataset))
    (folder / "dataset_fingerprint.json").write_text("{}")
    net = torch.nn.Linear(64, 2)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.ones(64)).sum().backward()
    optimizer.step()
    checkpoint = {
        "network_weights": net.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "grad_scaler_state": None,
        "trainer_name": trainer,
        "init_args": {"configuration": configuration},
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    (folder / "fold_0" / "training_log_1.txt").write_text("log")
    (folder / "fold_0" / "validation").mkdir()
    (folder / "fold_0" / "validation" / "summary.json").write_text("{}")
    (folder / "fold_0" / "validation" / "case.npz").write_bytes(b"npz")
    return folder


def test_logs_and_validation_only_when_asked(tmp_path: Path):
    model = model_folder(tmp_path / "results", "CustomEpochs")
    plain = export_bundle([model], tmp_path / "plain.zip")
    full = export_bundle([model], tmp_path / "full.zip", include_logs=True, include_validation=True)
    assert plain.members == {model.name: "nnUNetTrainer__nnUNetPlans__3d_fullres"}
    assert plain.removed_bytes > 0
    assert full.bundle_bytes > plain.bundle_bytes
    with zipfile.ZipFile(full.output) as archive:
        names = archive.namelist()
    fold = f"{DATASET}/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
    assert f"{fold}/training_log_1.txt" in names
    assert f"{fold}/validation/summary.json" in names
    assert f"{fold}/validation/case.npz" not in names  # as nnU-Net's export
    assert verify_bundle(full.output).manifest["members"][0]["run_records"] == {"0": None}


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path: Path):
    results = tmp_path / "results"
    a = model_folder(results, "CustomEpochs")
    b = model_folder(results, "nnUNetTrainerCustomEpochs")
    out = tmp_path / "bundle.zip"
    with pytest.raises(ValueError, match="would both be exported as nnUNetTrainer__nnUNetPlans"):
        export_bundle([a, b], out)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"schema_version": 2, "members": [{"path": "x"}, {"path": "y"}]}))
    with pytest.raises(ValueError, match=r"spec\.json has 2 member\(s\); model_dirs gives 1"):
        export_bundle([a], out, spec=spec)
    with pytest.raises(FileNotFoundError, match=r"no fold of .* has checkpoint_best\.pth"):
        export_bundle([a], out, checkpoints=["checkpoint_best.pth"])
    with pytest.raises(
        FileNotFoundError, match=r"checkpoint not found: .*fold_0/checkpoint_best\.pth"
    ):
        export_bundle([a], out, checkpoints=["checkpoint_final.pth", "checkpoint_best.pth"])
    with pytest.raises(NotADirectoryError, match="model folder not found"):
        export_bundle([tmp_path / "nothing"], out)
    other = model_folder(tmp_path / "other" / "r", "CustomEpochs", "2d")
    other.parent.rename(other.parent.with_name("Dataset502_Other"))
    moved = other.parent.with_name("Dataset502_Other") / other.name
    with pytest.raises(ValueError, match="must belong to one dataset"):
        export_bundle([a, moved], out)
    changed = model_folder(results, "TrainerOfOthers", "2d")
    with pytest.raises(ValueError, match="'TrainerOfOthers' must be one that nnU-Net finds"):
        export_bundle([changed], out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    export_bundle([a], out)
    with pytest.raises(FileExistsError, match=r"bundle\.zip"):
        export_bundle([a], out)
