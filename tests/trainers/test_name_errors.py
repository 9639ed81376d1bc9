"""Malformed trainer names are one line from the real ``nnUNetv2_train`` and ``nnUNetv2_predict``,
and nothing is created."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from nnunet_workspace import BIN, DATASET_ID, DATASET_NAME, NnunetWorkspace

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]


def _tree(ws: NnunetWorkspace) -> set[str]:
    return {
        str(p.relative_to(root))
        for root in (ws.raw, ws.preprocessed, ws.results)
        if root.exists()
        for p in root.rglob("*")
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("CustomEpochs_x5", "unknown key 'x' in '_x5'", id="unknown-key"),
        pytest.param("CustomEpochs_e5_e6", "key 'e' given twice", id="duplicate"),
        pytest.param("CustomEpochs_e5__p3", "is malformed", id="double-underscore"),
        pytest.param("CustomEpochs_", "is malformed", id="empty-suffix"),
        pytest.param("CustomEpochs_ep5", "'_ep5' must be an integer", id="bad-token"),
        pytest.param("CustomEpochs_d0p1p2", "is not a decimal", id="bad-decimal"),
    ],
)
def test_train_with_a_malformed_name_is_one_line(
    workspace: NnunetWorkspace, name: str, message: str
) -> None:
    before = _tree(workspace)
    result = workspace.run(
        "nnUNetv2_train", str(DATASET_ID), "3d_fullres", "0", "-tr", name, "-device", "cpu"
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("nnunet_ext: error: trainer name ")
    assert repr(name) in errors[0]
    assert message in errors[0]
    assert _tree(workspace) == before  # no results folder, no log, nothing


def _start_like_a_fresh_install(
    ws: NnunetWorkspace, tmp_path: Path, command: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the real ``command`` script in an interpreter whose start processes this checkout's
    ``nnunet_ext.pth`` hook, as a regular install of this version does (the shared venv's
    installed hook may be an older copy): ``sys.argv`` is set first, then the site folders are
    added, then the console script runs, exactly the order of a normal interpreter start."""
    site_dir = tmp_path / "site"
    site_dir.mkdir(parents=True)
    shutil.copyfile(ROOT / "nnunet_ext" / "_pth.py", site_dir / "_nnunet_ext_pth.py")
    shutil.copyfile(ROOT / "nnunet_ext" / "_pth_hook.pth", site_dir / "nnunet_ext.pth")
    code = (
        "import runpy, site, sys; script, ours, venv = sys.argv[1:4]; "
        "sys.argv = [script, *sys.argv[4:]]; site.addsitedir(ours); site.addsitedir(venv); "
        "runpy.run_path(script, run_name='__main__')"
    )
    script = str(BIN / command)
    venv_site = sysconfig.get_paths()["purelib"]
    return subprocess.run(
        [sys.executable, "-S", "-c", code, script, str(site_dir), venv_site, *args],
        env=ws.env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("CustomEpochs_x5", "unknown key 'x' in '_x5'", id="unknown-key"),
        pytest.param("CustomEpochs_e5_e6", "key 'e' given twice", id="duplicate"),
        pytest.param("CustomEpochs_", "is malformed", id="empty-suffix"),
    ],
)
def test_predict_with_a_malformed_name_is_one_line(
    workspace: NnunetWorkspace, tmp_path: Path, name: str, message: str
) -> None:
    out = tmp_path / "predicted"
    images = workspace.raw / DATASET_NAME / "imagesTs"
    before = _tree(workspace)
    args = ("-i", str(images), "-o", str(out), "-d", str(DATASET_ID), "-c", "3d_fullres")
    result = _start_like_a_fresh_install(
        workspace, tmp_path, "nnUNetv2_predict", *args, "-f", "0", "-tr", name
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert result.stderr.startswith(f"nnunet_ext: error: trainer name {name!r}")
    assert message in result.stderr
    assert not out.exists()  # nnUNetv2_predict would create it before failing
    assert _tree(workspace) == before


def test_start_hook_lets_valid_names_through(tmp_path: Path) -> None:
    workspace = NnunetWorkspace(tmp_path / "raw", tmp_path / "pre", tmp_path / "res")  # -h only
    for command in ("nnUNetv2_predict", "nnUNetv2_train"):
        result = _start_like_a_fresh_install(
            workspace, tmp_path / command, command, "-h", "-tr", "CustomEpochs_e5_p2"
        )
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout
    bad = _start_like_a_fresh_install(
        workspace, tmp_path / "bad", "nnUNetv2_train", "-h", "-tr", "CustomEpochs_q1"
    )
    assert bad.returncode == 1  # checked before nnU-Net parses (or imports) anything
