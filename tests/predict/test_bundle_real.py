"""`nnunet-ext export` and `predict --bundle` on the session's real tiny models (acceptance).

Members: the session's CustomEpochs 2d and 3d_fullres models, two folds each
(tests/conftest.py). The references are the real two-step route's probability folders and
labels (tests/predict/conftest.py, predicted with nnunet_ext installed and ``-tr CustomEpochs``).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from nnunet_workspace import DATASET_ID, DATASET_NAME, NnunetWorkspace, check

from nnunet_ext.postprocess.plan import PostprocessingPlan, save_plan

from ._helpers import CASES, ours, read_seg

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]

LABEL_WEIGHTS = [{"LV": 0.2, "RV": 3.0}, {"myocardium": 0.1, "3": 0.5}]
RULES = [{"label": "RV", "from": 0}, {"label": "LV", "scale": 1.5}]
PLAN = PostprocessingPlan(keep_largest_foreground=True, keep_largest=(1, 2, 3), fill_holes=(2,))
#: nnU-Net's console scripts, run from their entry points (what the scripts in bin/ call).
RUN_ENTRY_POINT = (
    "import sys; from importlib.metadata import entry_points; "
    "(ep,) = entry_points(group='console_scripts', name=sys.argv[1]); "
    "sys.argv = sys.argv[1:]; sys.exit(ep.load()())"
)


def tuned_spec(path: Path, members: list[Path]) -> Path:
    """A tuned ensemble spec (weights, per-label weights, rules) over these folders."""
    spec = {
        "schema_version": 2,
        "members": [
            {"path": str(m), "weight": w, "label_weights": lw}
            for m, w, lw in zip(members, (0.3, 0.7), LABEL_WEIGHTS, strict=True)
        ],
        "rules": RULES,
    }
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="module")
def recipe(
    workspace: NnunetWorkspace, two_step: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tuned spec (on the two-step probability folders) and a postprocessing plan."""
    folder = tmp_path_factory.mktemp("recipe")
    spec = tuned_spec(folder / "ensemble_spec.json", [two_step["2d"], two_step["3d_fullres"]])
    return {"spec": spec, "plan": save_plan(PLAN, folder / "postprocessing_plan.json")}


def export(workspace: NnunetWorkspace, models: dict[str, Path], recipe: dict[str, Path], out: Path):
    check(
        workspace.run(
            "python",
            "-m",
            "nnunet_ext",
            "export",
            "-m",
            str(models["2d"]),
            str(models["3d_fullres"]),
            "--spec",
            str(recipe["spec"]),
            "--plan",
            str(recipe["plan"]),
            "-o",
            str(out),
            "--json",
            str(out.with_suffix(".json")),
        )
    )
    return out


@pytest.fixture(scope="module")
def bundle(
    workspace: NnunetWorkspace,
    ensemble_models: dict[str, Path],
    recipe: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    return export(workspace, ensemble_models, recipe, tmp_path_factory.mktemp("b") / "bundle.zip")


def test_export_twice_gives_a_byte_identical_zip(
    workspace: NnunetWorkspace,
    ensemble_models: dict[str, Path],
    recipe: dict[str, Path],
    bundle: Path,
    tmp_path: Path,
):
    again = export(workspace, ensemble_models, recipe, tmp_path / "again.zip")
    assert again.read_bytes() == bundle.read_bytes()
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        assert names[:-1] == sorted(names[:-1])  # sorted, the manifest last
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_bundle_layout_slim_stock_checkpoints_and_manifest(
    ensemble_models: dict[str, Path], bundle: Path
):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(f"{DATASET_NAME}/nnunet_ext_bundle/manifest.json"))
        spec = json.loads(archive.read(f"{DATASET_NAME}/nnunet_ext_bundle/ensemble_spec.json"))
        for configuration, source in ensemble_models.items():
            base = f"{DATASET_NAME}/nnUNetTrainer__nnUNetPlans__{configuration}"
            for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
                assert f"{base}/{name}" in names
            for fold in (0, 1):
                data = archive.read(f"{base}/fold_{fold}/checkpoint_final.pth")
                # stock weights-only loading, no extra allowed globals (issue 23)
                slim = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                original = torch.load(
                    source / f"fold_{fold}" / "checkpoint_final.pth", weights_only=False
                )
                assert original["trainer_name"] == "CustomEpochs"
                assert slim["trainer_name"] == "nnUNetTrainer"
                assert "optimizer_state" not in slim
                assert "grad_scaler_state" not in slim
                for key, value in original["network_weights"].items():
                    assert torch.equal(slim["network_weights"][key], value)
    assert not any("training_log" in n or "/validation/" in n for n in names)
    assert manifest["schema_version"] == 1
    assert set(manifest["versions"]) == {"nnunet_ext", "nnunetv2", "torch"}
    assert {f["path"] for f in manifest["files"]} == names - {
        f"{DATASET_NAME}/nnunet_ext_bundle/manifest.json"
    }
    for member in manifest["members"]:
        assert member["trainer"] == "CustomEpochs"
        assert member["stock_trainer"] == "nnUNetTrainer"
        assert set(member["run_records"]) == {"0", "1"}
        assert all(r["schema_version"] == 2 for r in member["run_records"].values())
    assert [m["model"] for m in spec["members"]] == [
        "../nnUNetTrainer__nnUNetPlans__2d",
        "../nnUNetTrainer__nnUNetPlans__3d_fullres",
    ]
    assert [m["label_weights"] for m in spec["members"]] == LABEL_WEIGHTS
    assert spec["rules"] == [{"label": "RV", "from": 0}, {"label": "LV", "scale": 1.5}]


def test_bundle_is_smaller_than_the_folders_by_at_least_the_optimizer_state(
    ensemble_models: dict[str, Path], bundle: Path
):
    folders = sum(
        p.stat().st_size for m in ensemble_models.values() for p in m.rglob("*") if p.is_file()
    )
    optimizer = 0
    for model in ensemble_models.values():
        for checkpoint in model.glob("fold_*/checkpoint_final.pth"):
            state = torch.load(checkpoint, weights_only=False)
            buffer = io.BytesIO()
            torch.save([state["optimizer_state"], state["grad_scaler_state"]], buffer)
            optimizer += buffer.tell()
    size = bundle.stat().st_size
    summary = json.loads(bundle.with_suffix(".json").read_text())
    assert summary["bundle_bytes"] == size
    print(f"bundle {size} bytes, folders {folders}, optimizer state {optimizer}")  # noqa: T201
    assert optimizer > 0
    assert size <= folders - optimizer, (size, folders, optimizer)


def _stock_env(workspace: NnunetWorkspace, results: Path) -> dict[str, str]:
    env = workspace.env(nnUNet_results=str(results))
    for name in ("PYTHONPATH", "nnUNet_extTrainer", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def stock_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with stock nnunetv2 and without nnunet_ext, reusing installed packages.

    The shared venv's site-packages is appended by a ``.pth`` line: its packages (nnunetv2,
    torch, ...) import, but ``.pth`` files inside it are not processed, so nnunet_ext's editable
    install and its trainer hook (``nnunet_ext.pth``) stay inactive.
    """
    venv = tmp_path_factory.mktemp("stock") / "venv"
    check(
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)],
            capture_output=True,
            text=True,
            check=False,
        )
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "shared_site_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def stock(workspace: NnunetWorkspace, python: Path, results: Path, *args: str):
    """Run ``python -c`` or an nnU-Net console script in the stock venv, outside any checkout."""
    command = list(args) if args[0] == "-c" else ["-c", RUN_ENTRY_POINT, *args]
    return subprocess.run(
        [str(python), *command],
        env=_stock_env(workspace, results),
        cwd=results.parent,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_stock_nnunet_installs_the_bundle_and_predicts_the_same_labels(
    workspace: NnunetWorkspace,
    stock_python: Path,
    bundle: Path,
    two_step: dict[str, Path],
    test_images: Path,
    tmp_path: Path,
):
    results = tmp_path / "stock_results"
    results.mkdir()
    # the environment is stock: no nnunet_ext, no trainer hook, nnunetv2 from the wheel files
    probe = stock(workspace, stock_python, results, "-c", "import nnunet_ext")
    assert probe.returncode == 1
    assert "No module named 'nnunet_ext'" in probe.stderr
    probe = check(
        stock(
            workspace,
            stock_python,
            results,
            "-c",
            "import os, nnunetv2; print(os.environ.get('nnUNet_extTrainer'), nnunetv2.__file__)",
        )
    )
    assert probe.stdout.split() == [
        "None",
        str(Path(sysconfig.get_paths()["purelib"]) / "nnunetv2" / "__init__.py"),
    ]
    predict = ["-i", str(test_images), "-d", str(DATASET_ID), "-f", "0", "1", "-device", "cpu"]
    predict += ["-npp", "1", "-nps", "1", "--disable_tta"]
    # the original CustomEpochs model cannot be loaded here
    original = stock(
        workspace, stock_python, workspace.results, "nnUNetv2_predict", *predict,
        "-o", str(tmp_path / "original"), "-c", "3d_fullres", "-tr", "CustomEpochs",
    )  # fmt: skip
    assert original.returncode != 0
    assert (
        "Could not find requested nnunet trainer CustomEpochs" in original.stdout + original.stderr
    )
    # the bundle installs with nnU-Net's own command and predicts with the stock trainer
    check(
        stock(
            workspace,
            stock_python,
            results,
            "nnUNetv2_install_pretrained_model_from_zip",
            str(bundle),
        )
    )
    for configuration in ("2d", "3d_fullres"):
        out = tmp_path / f"stock_{configuration}"
        check(
            stock(
                workspace, stock_python, results, "nnUNetv2_predict", *predict,
                "-o", str(out), "-c", configuration, "-tr", "nnUNetTrainer",
            )
        )  # fmt: skip
        for case in CASES:
            mine, geometry = read_seg(out / f"{case}.nii.gz")
            theirs, their_geometry = read_seg(two_step[configuration] / f"{case}.nii.gz")
            np.testing.assert_array_equal(mine, theirs, err_msg=f"{configuration} {case}")
            assert geometry == their_geometry


@pytest.fixture(scope="module")
def reference(
    workspace: NnunetWorkspace, recipe: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tuned ensemble (`ensemble --spec`) and its labels after `postprocess --plan`."""
    folder = tmp_path_factory.mktemp("reference")
    tuned, final = folder / "tuned", folder / "tuned_postprocessed"
    check(
        workspace.run(
            "python", "-m", "nnunet_ext", "ensemble", "--spec", str(recipe["spec"]),
            "-o", str(tuned),
        )
    )  # fmt: skip
    check(
        workspace.run(
            "python", "-m", "nnunet_ext", "postprocess", "-i", str(tuned), "-o", str(final),
            "--plan", str(recipe["plan"]),
        )
    )  # fmt: skip
    return {"tuned": tuned, "final": final}


def test_predict_bundle_reproduces_tuned_and_postprocessed_labels(
    workspace: NnunetWorkspace,
    bundle: Path,
    reference: dict[str, Path],
    test_images: Path,
    tmp_path: Path,
):
    out = tmp_path / "from_bundle"
    ours(
        workspace,
        "-i", str(test_images), "-o", str(out), "--bundle", str(bundle),
        "--device", "cpu", "--disable-tta",
    )  # fmt: skip
    changed = 0
    for case in CASES:
        mine, geometry = read_seg(out / f"{case}.nii.gz")
        final, final_geometry = read_seg(reference["final"] / f"{case}.nii.gz")
        tuned, _ = read_seg(reference["tuned"] / f"{case}.nii.gz")
        np.testing.assert_array_equal(mine, final, err_msg=case)
        assert geometry == final_geometry
        changed += int(np.count_nonzero(tuned != final))
    assert changed > 0  # the plan did change labels, so the comparison covers postprocessing
    record = json.loads((out / "nnunet_ext_bundle.json").read_text())
    assert record["manifest"]["dataset"] == DATASET_NAME
    assert not any(p.name.startswith(".") for p in out.iterdir())


def _tampered(bundle: Path, target: Path) -> tuple[Path, str]:
    """A copy of ``bundle`` with one byte of a checkpoint changed (the zip itself consistent)."""
    name = f"{DATASET_NAME}/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_1/checkpoint_final.pth"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(target, "w") as archive:
        for info in source.infolist():
            data = bytearray(source.read(info))
            if info.filename == name:
                data[len(data) // 2] ^= 0x01
            archive.writestr(info, bytes(data))
    return target, name


def test_a_tampered_bundle_is_refused_by_check_and_predict_naming_the_file(
    workspace: NnunetWorkspace, bundle: Path, test_images: Path, tmp_path: Path
):
    tampered, name = _tampered(bundle, tmp_path / "tampered.zip")
    checked = workspace.run("python", "-m", "nnunet_ext", "export", "--check", str(tampered))
    assert checked.returncode == 1
    assert f"tampered.zip: {name} must be a file with the manifest's SHA-256" in checked.stderr
    out = tmp_path / "out"
    predicted = workspace.run(
        "python", "-m", "nnunet_ext", "predict", "-i", str(test_images), "-o", str(out),
        "--bundle", str(tampered), "--device", "cpu",
    )  # fmt: skip
    assert predicted.returncode == 1
    assert f"tampered.zip: {name} must be a file with the manifest's SHA-256" in predicted.stderr
    assert len(predicted.stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert check(workspace.run("python", "-m", "nnunet_ext", "export", "--check", str(bundle)))
