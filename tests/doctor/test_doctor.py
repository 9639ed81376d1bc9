from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nnunet_ext import cli as umbrella
from nnunet_ext.doctor import Finding, scan_data
from nnunet_ext.doctor.cli import main
from nnunet_ext.doctor.data import remove_junk
from nnunet_ext.doctor.environment import (
    check_folders,
    check_nnunetv2_version,
    interpret_lookup_output,
)

SKIP_ENV = ["--skip-env", "-j", "1"]


def _roots(tree: SimpleNamespace) -> dict[str, Path]:
    return {
        "nnUNet_raw": tree.raw,
        "nnUNet_preprocessed": tree.preprocessed,
        "nnUNet_results": tree.results,
    }


def _by_path(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.path or "", []).append(f)
    return out


# --- acceptance 2 and 3 -----------------------------------------------------------------------


@pytest.mark.nnunet
def test_acceptance_doctor_names_planted_defects(planted_tree: SimpleNamespace) -> None:
    """The real console script, environment checks included (trainer lookup, torch probe)."""
    env = dict(
        os.environ,
        nnUNet_raw=str(planted_tree.raw),
        nnUNet_preprocessed=str(planted_tree.preprocessed),
        nnUNet_results=str(planted_tree.results),
    )
    script = Path(sys.executable).parent / "nnunet-ext"
    result = subprocess.run(
        [str(script), "doctor"], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert result.returncode == 1, result.stderr
    out = result.stdout
    planted = planted_tree.planted
    assert f"[junk] {planted['appledouble']}: macOS AppleDouble file" in out
    assert (
        f"[labels] {planted['float_label']}: must be integer label values "
        "(within 0.001 of an integer); got 2.4" in out
    )
    assert f"[unreadable] {planted['corrupt_npz']}: cannot be read completely" in out
    assert "nnUNetv2_train 501 3d_fullres 0 -tr nnUNetTrainer -p nnUNetPlans --val --npz" in out
    assert "[trainers] -tr CustomEpochs found in" in out
    assert "[env] nnunetv2 2.8.1" in out
    assert "[torch] torch" in out


def test_acceptance_fix_removes_only_junk(
    planted_tree: SimpleNamespace, nnunet_env: Any, helpers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    nnunet_env(planted_tree)
    roots = (planted_tree.raw, planted_tree.preprocessed, planted_tree.results)
    before = helpers.snapshot(*roots)
    assert main([*SKIP_ENV, "--fix"]) == 1  # the other defects are still there
    out = capsys.readouterr().out
    after = helpers.snapshot(*roots)
    junk = {
        str(planted_tree.planted[k]) for k in ("appledouble", "ds_store_raw", "ds_store_results")
    }
    assert set(before) - set(after) == junk
    assert all(after[p] == before[p] for p in after)  # nothing else changed, not even mtimes
    for path in junk:
        assert f"removed {path}" in out
    assert "[junk]" not in out
    assert "removed 3 junk file(s)" in out
    # a second run finds no junk and removes nothing
    assert main([*SKIP_ENV, "--fix"]) == 1
    assert "removed 0 junk file(s)" in capsys.readouterr().out


def test_without_fix_nothing_changes(
    planted_tree: SimpleNamespace, nnunet_env: Any, helpers: Any
) -> None:
    nnunet_env(planted_tree)
    roots = (planted_tree.raw, planted_tree.preprocessed, planted_tree.results)
    before = helpers.snapshot(*roots)
    assert main(SKIP_ENV) == 1
    assert helpers.snapshot(*roots) == before


# --- every planted defect, found in parallel --------------------------------------------------


EXPECTED = {
    "appledouble": ("junk", "macOS AppleDouble file"),
    "ds_store_raw": ("junk", "macOS folder metadata"),
    "ds_store_results": ("junk", "macOS folder metadata"),
    "float_label": ("labels", "must be integer label values (within 0.001 of an integer); got 2.4"),
    "undeclared_label": ("labels", "label values [7] are not declared in dataset.json"),
    "corrupt_npz": ("unreadable", "cannot be read completely"),
    "truncated_image": ("unreadable", "cannot be read completely"),
    "image_without_label": ("pairing", "image without label: no heart_009.nii.gz in labelsTr"),
    "wrong_channel": ("channels", "channel suffix _0001 but dataset.json declares 1 channel(s)"),
    "truncated_pkl": ("unreadable", "cannot be read completely"),
    "truncated_b2nd": ("unreadable", "cannot be read completely"),
    "truncated_pth": ("unreadable", "cannot be read completely"),
    "truncated_nii": ("unreadable", "truncated or corrupt: "),
}
FIXES = {
    "appledouble": "nnunet-ext doctor --fix",
    "float_label": "re-export the label as integers",
    "corrupt_npz": "nnUNetv2_train 501 3d_fullres 0 -tr nnUNetTrainer -p nnUNetPlans --val --npz",
    "truncated_image": "copy or export this file again",
    "truncated_pkl": "re-run nnUNetv2_preprocess -d 501 -c 3d_fullres for this case",
    "truncated_pth": "the checkpoint is damaged",
}


def test_scan_finds_each_planted_defect_and_nothing_else(planted_tree: SimpleNamespace) -> None:
    findings, files_read = scan_data(_roots(planted_tree), num_workers=2)
    by_path = _by_path(findings)
    for key, (check, text) in EXPECTED.items():
        path = str(planted_tree.planted[key])
        matching = [f for f in by_path.get(path, []) if f.check == check and text in f.message]
        assert matching, f"{key}: {by_path.get(path)}"
        assert matching[0].severity == "error"
        if key in FIXES:
            assert FIXES[key] in (matching[0].fix or ""), matching[0].fix
    planted_paths = {str(p) for p in planted_tree.planted.values()}
    unexpected = [f for f in findings if f.path not in planted_paths]
    assert [(f.severity, f.message) for f in unexpected] == [
        ("warning", "numTraining is 4 but imagesTr holds 5 cases")  # the orphan image
    ]
    assert files_read >= 20


def test_clean_tree_passes(
    clean_tree: SimpleNamespace, nnunet_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    nnunet_env(clean_tree)
    assert main(SKIP_ENV) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("0 problem(s), 0 warning(s);")


def test_json_report(planted_tree: SimpleNamespace, nnunet_env: Any, tmp_path: Path) -> None:
    nnunet_env(planted_tree)
    out = tmp_path / "doctor.json"
    assert main([*SKIP_ENV, "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["schema_version"] == 1
    assert report["ok"] is False
    assert {f["check"] for f in report["findings"]} >= {
        "junk",
        "labels",
        "unreadable",
        "pairing",
        "channels",
    }


# --- --dataset --------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["501", "Dataset501_SyntheticHeart", "SyntheticHeart"])
def test_dataset_selection(planted_tree: SimpleNamespace, helpers: Any, dataset: str) -> None:
    other = helpers.make_clean_tree(planted_tree.raw.parent / "other")
    # a second dataset with junk that must be ignored when --dataset selects 501
    moved = planted_tree.raw / "Dataset502_Other"
    other.dataset.rename(moved)
    (moved / "._junk").write_bytes(b"x")
    findings, _ = scan_data(_roots(planted_tree), dataset=dataset)
    assert findings
    assert all("Dataset502" not in (f.path or "") for f in findings)
    everything, _ = scan_data(_roots(planted_tree))
    assert any("Dataset502_Other/._junk" in (f.path or "") for f in everything)


def test_unknown_dataset_is_a_usage_error(
    clean_tree: SimpleNamespace, nnunet_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    nnunet_env(clean_tree)
    assert main([*SKIP_ENV, "--dataset", "777"]) == 1
    err = capsys.readouterr().err
    assert "--dataset '777' matches no Dataset folder" in err
    assert "available: Dataset501_SyntheticHeart" in err


def test_missing_roots(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(name, raising=False)
    assert main(SKIP_ENV) == 1
    assert "none of nnUNet_raw, nnUNet_preprocessed, nnUNet_results is an existing folder" in (
        capsys.readouterr().err
    )


def test_bad_arguments(
    clean_tree: SimpleNamespace, nnunet_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    nnunet_env(clean_tree)
    with pytest.raises(SystemExit) as usage:  # a usage error, as in every command
        main(["--skip-env", "-j", "0"])
    assert usage.value.code == 2
    assert "-j/--num-workers: must be an integer >= 1; got '0'" in capsys.readouterr().err
    assert main([*SKIP_ENV, "--json", "x.txt"]) == 1
    assert "--json must be a .json file" in capsys.readouterr().err


def test_remove_junk_never_deletes_data(tmp_path: Path) -> None:
    data = tmp_path / "case.npz"
    data.write_bytes(b"data")
    lying = Finding("error", "junk", "junk", path=str(data))
    assert remove_junk([lying]) == []
    assert data.exists()


# --- environment ------------------------------------------------------------------------------


def test_check_folders(tmp_path: Path) -> None:
    env = {"nnUNet_raw": str(tmp_path), "nnUNet_preprocessed": str(tmp_path / "missing")}
    raw, pre, res = check_folders(env)
    assert raw.severity == "ok"
    assert pre.severity == "error"
    assert "nnUNet_preprocessed must be an existing folder" in pre.message
    assert res.severity == "error"
    assert res.message.startswith("nnUNet_results is not set")
    assert res.fix is not None
    assert "export nnUNet_results=" in res.fix


@pytest.mark.parametrize(
    ("version", "severity"),
    [("2.8.1", "ok"), ("2.8.3", "ok"), ("2.8.0", "error"), ("2.7.0", "error"), ("2.9.0", "error")],
)
def test_nnunetv2_version(version: str, severity: str) -> None:
    finding = check_nnunetv2_version(version)
    assert finding.severity == severity
    if severity == "error":
        assert "nnunetv2 must be >=2.8.1,<2.9" in finding.message


def test_installed_nnunetv2_supported() -> None:
    assert check_nnunetv2_version().severity == "ok"


@pytest.mark.parametrize(
    ("stdout", "code", "expected"),
    [
        pytest.param(
            json.dumps(
                {
                    "nnunetv2_version": "2.8.1",
                    "nnUNet_extTrainer": "/s",
                    "trainers": [
                        {
                            "name": "CustomEpochs",
                            "found": True,
                            "module": "m.CustomEpochs",
                            "reason": None,
                        }
                    ],
                },
                indent=2,
            ),
            0,
            [("ok", "-tr CustomEpochs found in m.CustomEpochs")],
            id="found-multiline-json",
        ),
        pytest.param(
            "Inspecting module x\n"
            + json.dumps(
                {
                    "nnunetv2_version": "2.8.1",
                    "nnUNet_extTrainer": None,
                    "trainers": [
                        {
                            "name": "CustomEpochs",
                            "found": False,
                            "module": None,
                            "reason": "not set",
                        }
                    ],
                }
            ),
            1,
            [("error", "nnU-Net's trainer lookup does not find CustomEpochs: not set")],
            id="missing",
        ),
        pytest.param(
            "",
            1,
            [("error", "the trainer lookup check failed: ModuleNotFoundError: x")],
            id="crash",
        ),
    ],
)
def test_interpret_lookup_output(stdout: str, code: int, expected: list[tuple[str, str]]) -> None:
    stderr = "Traceback...\nModuleNotFoundError: x\n" if not stdout else ""
    got = [(f.severity, f.message) for f in interpret_lookup_output(stdout, stderr, code)]
    assert got == expected


@pytest.mark.nnunet
def test_real_trainer_lookup_env_only(
    clean_tree: SimpleNamespace, nnunet_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Environment checks only (real nnU-Net lookup in a child process), no torch probe."""
    nnunet_env(clean_tree)
    assert main(["--skip-data", "--skip-torch"]) == 0
    out = capsys.readouterr().out
    assert "[trainers] -tr CustomEpochs found in nnunet_ext.trainers" in out
    assert "[env] nnUNet_results = " in out
    assert "[torch]" not in out
    assert "0 file(s) read" in out


def test_import_and_help_stay_light() -> None:
    code = (
        "import sys, runpy\n"
        "import nnunet_ext.doctor, nnunet_ext.doctor.cli\n"
        "sys.argv = ['x', '--help']\n"
        "try:\n    runpy.run_module('nnunet_ext.doctor', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'nnunetv2', 'SimpleITK', 'blosc2') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "usage: nnunet-ext doctor" in result.stdout
    assert "HEAVY []" in result.stdout


def test_umbrella_lists_doctor_and_log(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="0"):
        umbrella.main(["--help"])
    out = capsys.readouterr().out
    assert "doctor" in out
    assert "log" in out
