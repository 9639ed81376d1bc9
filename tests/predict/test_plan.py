"""Validation before any network is loaded: members, folds, checkpoints, labels, channels, spec."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnunet_ext.predict.plan import (
    ModelMember,
    ProbabilityMember,
    load_predict_spec,
    plan_prediction,
    select_part,
)

LABELS = {"background": 0, "myocardium": 1, "LV": 2, "RV": 3}


def make_model(
    root: Path,
    configuration: str = "3d_fullres",
    *,
    folds: tuple[str, ...] = ("0", "1"),
    labels: dict[str, int] | None = None,
    channels: int = 1,
    checkpoint: str = "checkpoint_final.pth",
) -> Path:
    """A model folder as nnUNetv2_train leaves it; checkpoints are tiny zips (never loaded)."""
    folder = root / f"CustomEpochs__nnUNetPlans__{configuration}"
    folder.mkdir(parents=True)
    dataset = {
        "channel_names": {str(i): f"ch{i}" for i in range(channels)},
        "labels": labels or LABELS,
        "file_ending": ".nii.gz",
    }
    patch = [48, 48] if configuration == "2d" else [16, 48, 48]
    plans = {
        "dataset_name": "Dataset501_SyntheticHeart",
        "image_reader_writer": "SimpleITKIO",
        "configurations": {configuration: {"patch_size": patch, "architecture": ARCHITECTURE}},
    }
    (folder / "dataset.json").write_text(json.dumps(dataset))
    (folder / "plans.json").write_text(json.dumps(plans))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        write_checkpoint(folder / f"fold_{fold}" / checkpoint)
    return folder


#: A configuration's ``architecture`` as nnU-Net 2.x plans hold it (never built here).
ARCHITECTURE = {"network_class_name": "PlainConvUNet", "arch_kwargs": {}}


def write_checkpoint(path: Path) -> None:
    """A checkpoint as torch.save writes it, with the keys nnU-Net's predictor reads, for the
    model folder it is in (the network is never loaded here)."""
    import torch

    trainer, _, configuration = path.parent.parent.name.split("__")
    checkpoint = {
        "network_weights": {"conv.weight": torch.zeros(1)},
        "trainer_name": trainer,
        "init_args": {"configuration": configuration},
        "inference_allowed_mirroring_axes": (0, 1) if configuration == "2d" else (0, 1, 2),
    }
    torch.save(checkpoint, path)


def make_images(folder: Path, cases: tuple[str, ...] = ("a", "b"), channels: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        for channel in range(channels):
            (folder / f"{case}_{channel:04d}.nii.gz").write_bytes(b"")
    return folder


def test_plan_lists_members_folds_cases_and_weights(tmp_path):
    m3d = make_model(tmp_path / "r1")
    m2d = make_model(tmp_path / "r2", "2d", folds=("0", "1", "3"))
    images = make_images(tmp_path / "img", ("x", "y", "z"))
    plan = plan_prediction(images, model_dirs=[m2d, m3d], weights=[1, 3])
    assert [m.folds for m in plan.models] == [("0", "1", "3"), ("0", "1")]
    assert [m.configuration for m in plan.models] == ["2d", "3d_fullres"]
    assert [c.case_id for c in plan.cases] == ["x", "y", "z"]
    assert plan.weights.tolist() == [[1.0] * 4, [3.0] * 4]
    assert plan.settings["mirror_axes"] == [None, None]


def test_default_folds_skip_folds_without_the_checkpoint_like_nnunet(tmp_path):
    model = make_model(tmp_path, folds=("0", "1"))
    (model / "fold_1" / "checkpoint_final.pth").unlink()
    (model / "fold_all").mkdir()
    write_checkpoint(model / "fold_all" / "checkpoint_final.pth")
    plan = plan_prediction(make_images(tmp_path / "img"), model_dirs=[model])
    assert plan.models[0].folds == ("0",)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no_checkpoint", r"no fold of .* has checkpoint_final\.pth"),
        ("fold_missing", r"fold 4 not found: .*fold_4 \(folds present: 0, 1\)"),
        ("checkpoint_missing_in_fold", r"checkpoint not found: .*fold_1.checkpoint_best\.pth"),
        ("labels_differ", r"members must predict the same labels"),
        (
            "channels",
            r"must have the model.s 2 channel file\(s\) a_0000..a_0001\.nii\.gz; "
            r"got channel\(s\) \[0\]",
        ),
        ("not_a_model", r"dataset\.json not found; a trained model folder"),
        ("cascade", r"cascade stage; its previous stage must be trained beside it: .*3d_lowres"),
        ("cascade_fold", r"previous stage .*3d_lowres lacks fold 1's checkpoint_final\.pth"),
        ("cascade_self", r"names previous_stage '3d_cascade_fullres'.*another configuration"),
    ],
)
def test_bad_input_gives_one_clear_error(tmp_path, breakage, message):
    kwargs: dict[str, object] = {}
    images = make_images(tmp_path / "img")
    if breakage == "no_checkpoint":
        models = [make_model(tmp_path, folds=("0",), checkpoint="checkpoint_latest.pth")]
    elif breakage == "fold_missing":
        models = [make_model(tmp_path)]
        kwargs["folds"] = [0, 4]
    elif breakage == "checkpoint_missing_in_fold":
        models = [make_model(tmp_path, checkpoint="checkpoint_best.pth")]
        (models[0] / "fold_1" / "checkpoint_best.pth").unlink()
        kwargs["folds"] = [0, 1]
        kwargs["checkpoint"] = "checkpoint_best.pth"
    elif breakage == "labels_differ":
        models = [
            make_model(tmp_path / "a"),
            make_model(tmp_path / "b", "2d", labels={"background": 0, "LV": 1}),
        ]
    elif breakage == "channels":
        models = [make_model(tmp_path, channels=2)]
    elif breakage == "not_a_model":
        models = [tmp_path / "empty__x__3d_fullres"]
        models[0].mkdir()
    else:
        models = [make_cascade(tmp_path, breakage)]
    with pytest.raises((ValueError, FileNotFoundError, NotADirectoryError), match=message):
        plan_prediction(images, model_dirs=models, **kwargs)  # type: ignore[arg-type]


def make_cascade(root: Path, breakage: str = "") -> Path:
    """A 3d_cascade_fullres folder; its 3d_lowres folder beside it unless ``breakage`` says."""
    folder = make_model(root, "3d_cascade_fullres")
    plans = json.loads((folder / "plans.json").read_text())
    configurations = plans["configurations"]
    previous = "3d_cascade_fullres" if breakage == "cascade_self" else "3d_lowres"
    configurations["3d_cascade_fullres"]["previous_stage"] = previous
    configurations["3d_lowres"] = {**configurations["3d_cascade_fullres"], "previous_stage": None}
    (folder / "plans.json").write_text(json.dumps(plans))
    if breakage != "cascade":
        make_model(root, "3d_lowres", folds=("0",) if breakage == "cascade_fold" else ("0", "1"))
    return folder


def test_a_cascade_stage_brings_its_previous_stage_with_the_same_folds(tmp_path):
    cascade = make_cascade(tmp_path)
    plan = plan_prediction(make_images(tmp_path / "img"), model_dirs=[cascade], folds=[1])
    member = plan.models[0]
    assert member.previous_stage is not None
    assert member.previous_stage.model_dir == tmp_path / "CustomEpochs__nnUNetPlans__3d_lowres"
    assert member.previous_stage.folds == member.folds == ("1",)
    assert [s.configuration for s in member.stages] == ["3d_lowres", "3d_cascade_fullres"]
    assert member.to_dict()["previous_stage"]["configuration"] == "3d_lowres"
    assert "previous_stage" not in member.previous_stage.to_dict()


def test_cli_bad_input_is_one_line_exit_1_before_torch_is_imported(tmp_path):
    model = make_model(tmp_path)
    images = make_images(tmp_path / "img")
    probe = (
        "import sys\n"
        "from nnunet_ext.cli import main\n"
        f"code = main(['predict', '-i', {str(images)!r}, '-o', {str(tmp_path / 'out')!r}, "
        f"'-m', {str(model)!r}, '-f', '0', '7'])\n"
        "print('torch' in sys.modules, code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "False 1"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("nnunet-ext predict: error: -m/--model member 0: fold 7 not found")
    assert not (tmp_path / "out").exists()


def test_cli_bundle_that_is_not_a_zip_is_one_line_exit_1(tmp_path, capsys):
    from nnunet_ext.cli import main

    images = make_images(tmp_path / "img")
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(b"not a zip")
    out = tmp_path / "out"
    code = main(["predict", "-i", str(images), "-o", str(out), "--bundle", str(bundle)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1, lines
    assert len(lines) == 1
    assert lines[0].startswith("nnunet-ext predict: error: ")
    assert "bundle.zip" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--claim"], r"-j/--num-workers > 1 \(the pipeline\) cannot be combined with (--)?claim"),
        (
            ["--qc"],
            r"-j/--num-workers > 1 \(the pipeline\) predicts locally without QC; got (--)?qc",
        ),
    ],
)
def test_cli_pipeline_refuses_what_predicts_case_by_case(tmp_path, capsys, extra, message):
    from nnunet_ext.cli import main

    model = make_model(tmp_path)
    images = make_images(tmp_path / "img")
    out = tmp_path / "out"
    argv = ["predict", "-i", str(images), "-o", str(out), "-m", str(model), "-j", "2", *extra]
    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1, lines
    assert len(lines) == 1
    assert re.search(message, lines[0]), lines
    assert not out.exists()


def test_mirror_axes_must_fit_some_model(tmp_path):
    m2d = make_model(tmp_path / "a", "2d")
    m3d = make_model(tmp_path / "b")
    images = make_images(tmp_path / "img")
    plan = plan_prediction(images, model_dirs=[m2d, m3d], mirror_axes=[0, 2])
    assert plan.settings["mirror_axes"] == [[0], [0, 2]]
    with pytest.raises(ValueError, match=r"mirror_axes \[2\] exceed every model's patch"):
        plan_prediction(images, model_dirs=[m2d], mirror_axes=[2])
    with pytest.raises(ValueError, match=r"step_size must be in \(0, 1\]"):
        plan_prediction(images, model_dirs=[m2d], step_size=0)


def test_spec_mixes_model_and_path_members(tmp_path):
    model = make_model(tmp_path / "results")
    probs = tmp_path / "pred_ext"
    probs.mkdir()
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "members": [
                    {
                        "model": "results/CustomEpochs__nnUNetPlans__3d_fullres",
                        "folds": [1],
                        "checkpoint": "checkpoint_best_RV.pth",
                        "weight": 2,
                        "label_weights": {"RV": 5},
                    },
                    {"path": "pred_ext", "weight": 1},
                ],
            }
        )
    )
    ensemble_spec = load_predict_spec(spec)
    assert ensemble_spec.input_dirs == [
        tmp_path / "results/CustomEpochs__nnUNetPlans__3d_fullres",
        probs,
    ]
    first, second = ensemble_spec.members
    assert (first.model, first.folds, first.checkpoint) == (True, ("1",), "checkpoint_best_RV.pth")
    assert (second.model, second.folds, second.checkpoint) == (False, None, None)
    # the checkpoint named in the spec must exist (per-label best checkpoints are plain names)
    with pytest.raises(FileNotFoundError, match=r"checkpoint_best_RV\.pth"):
        plan_prediction(make_images(tmp_path / "img"), spec=spec)
    write_checkpoint(model / "fold_1" / "checkpoint_best_RV.pth")
    with pytest.raises(FileNotFoundError, match=r"pred_ext.dataset\.json not found"):
        plan_prediction(make_images(tmp_path / "img"), spec=spec)


def test_spec_rejects_model_keys_on_path_members_and_both_kinds(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"schema_version": 1, "members": [{"path": "a", "folds": [0]}]}))
    with pytest.raises(ValueError, match=r"members\[0\] must be a 'model' member .*\['folds'\]"):
        load_predict_spec(spec)
    spec.write_text(json.dumps({"schema_version": 1, "members": [{"path": "a", "model": "b"}]}))
    with pytest.raises(ValueError, match=r"members\[0\] must be 'model' .* or 'path' .*; got both"):
        load_predict_spec(spec)
    spec.write_text(json.dumps({"schema_version": 1, "members": [{"model": "b", "wieght": 1}]}))
    with pytest.raises(ValueError, match=r"members\[0\]\.wieght must be a known key"):
        load_predict_spec(spec)


def test_member_kinds_are_what_the_plan_says(tmp_path):
    model = make_model(tmp_path)
    plan = plan_prediction(make_images(tmp_path / "img"), model_dirs=[model])
    assert isinstance(plan.members[0], ModelMember)
    assert not isinstance(plan.members[0], ProbabilityMember)


@given(st.lists(st.integers(), max_size=30), st.integers(1, 7))
def test_parts_cover_every_case_once(cases, num_parts):
    parts = [select_part(cases, k, num_parts) for k in range(num_parts)]
    assert sorted(x for part in parts for x in part) == sorted(cases)
    assert sum(len(p) for p in parts) == len(cases)
