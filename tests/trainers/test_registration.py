"""nnU-Net's own trainer lookup finds our trainers after installation, with nothing set.

Issue 2, acceptance 2: both for the editable install of this checkout and for a regular
(wheel) install, in fresh interpreters whose environment has no ``nnUNet_extTrainer``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["CustomEpochs", "nnUNetTrainerCustomEpochs", "CustomEpochs_e250_p30"]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.pop("PYTHONPATH", None)
    return env


def _lookup(code: str, cwd: Path) -> dict:
    result = subprocess.run(
        [sys.executable, *code.split("\0")],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.nnunet
def test_editable_install_is_found_by_nnunet_lookup(tmp_path):
    report = _lookup("\0".join(["-m", "nnunet_ext.trainers.lookup", "--json", *NAMES]), tmp_path)
    assert [t["found"] for t in report["trainers"]] == [True, True, True]
    assert report["trainers"][0]["module"] == "nnunet_ext.trainers.custom_epochs.CustomEpochs"
    assert report["trainers"][2]["module"] == "nnunet_ext.trainers.named.CustomEpochs_e250_p30"
    assert report["nnUNet_extTrainer"] == str(ROOT / "nnunet_ext" / "_nnunet_shim")


@pytest.mark.nnunet
@pytest.mark.slow
def test_regular_wheel_install_is_found_by_nnunet_lookup(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("nnunet_ext-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "nnunet_ext.pth",
        "_nnunet_ext_pth.py",
        "nnunet_ext/_nnunet_shim/nnunet_ext_trainers.py",
    } <= names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # A fresh interpreter that sees the wheel install as its site dir (processing its .pth), and
    # the venv's packages (nnunetv2, torch) but not this checkout's editable install.
    venv_site = sysconfig.get_paths()["purelib"]
    code = (
        "import site, sys, json; site.addsitedir(sys.argv[1]); sys.path.append(sys.argv[2]); "
        "import nnunet_ext; assert nnunet_ext.__file__.startswith(sys.argv[1]), "
        "nnunet_ext.__file__; "
        "from nnunet_ext.trainers.lookup import main; sys.exit(main(['--json', *sys.argv[3:]]))"
    )
    report = _lookup("\0".join(["-S", "-c", code, str(target), venv_site, *NAMES]), tmp_path)
    assert [t["found"] for t in report["trainers"]] == [True, True, True]
    assert report["nnUNet_extTrainer"] == str(target / "nnunet_ext" / "_nnunet_shim")


@pytest.mark.nnunet
def test_lookup_explains_a_missing_registration(tmp_path):
    code = (
        "import os, sys; os.environ['nnUNet_extTrainer'] = '/nonexistent'; "
        "from nnunet_ext.trainers.lookup import main; sys.exit(main(['--json', 'CustomEpochs']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1
    (trainer,) = json.loads(result.stdout)["trainers"]
    assert trainer["found"] is False
    assert "does not contain" in trainer["reason"]
    assert "_nnunet_shim" in trainer["reason"]
