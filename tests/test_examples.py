"""Every file in examples/ runs and does what it says.

Scripts run as a user runs them, ``python examples/NAME.py WORK_DIR`` in a fresh interpreter
(with ``-W error``), so the ``__main__`` guard and the spawn worker pools are exercised. The
notebook's code cells run in order in one namespace, without Jupyter.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOK = EXAMPLES / "quick_tour.ipynb"

#: Script -> regular expressions its output must match (one per line of interest).
SCRIPTS: dict[str, list[str]] = {
    "fuse_with_spec.py": [
        r"wrote 3 prediction folders with 2 cases each",
        r"fused 2 case\(s\) into .*fused",
        r"heart_000: array fusion equals the folder output: True",
    ],
    "tune_weights.py": [
        r"^1 myocardium\s+[\d.]+\s+[\d.]+",
        r"^3 RV\s+[\d.]+\s+[\d.]+",
        r"6 case\(s\) used, 0 left out",
        r"tuned spec: .*tuned_spec\.json",
        r"foreground mean Dice: equal (?P<equal>[\d.]+) -> tuned (?P<tuned>[\d.]+)",
    ],
    "postprocess_array_and_folder.py": [
        r"voxels changed by the plan: 5",
        r"fill_holes\s+label 2: .* accepted",
        r"postprocessed 3 case\(s\) into .*postprocessed",
    ],
    "evaluate_folder.py": [
        r"nan\s+(?P<nan_case0>[\d.]+)\s+nan\s+0\.0000\s+[\d.]+\s+2/3 cases",
        r"one\s+[\d.]+\s+1\.0000\s+0\.0000\s+[\d.]+\s+3/3 cases",
        r"skip\s+(?P<skip_case0>[\d.]+)\s+nan\s+0\.0000\s+(?P<skip_mean>[\d.]+)\s+1/3 cases",
        r"wrote evaluation\.json and evaluation_per_case\.csv",
        r"nan\s+[\d.]+\s+nan\s+nan\s+mean [\d.]+, undefined in 2 case\(s\)",
        r"brats\s+[\d.]+\s+0\.00\s+374\.00\s+mean [\d.]+, undefined in 0 case\(s\)",
    ],
    "build_submission.py": [
        r"submission\.zip: 3 case\(s\), all checks passed",
        r"zip entries: \['heart_000\.nii\.gz', 'heart_001\.nii\.gz', 'heart_002\.nii\.gz'\]",
        r"check_submission: 3 case\(s\), all checks passed",
        r"check_submission\(handmade\.zip\) found 3 problem\(s\)",
        r"heart_002: missing",
    ],
    "read_training_log.py": [
        r"epochs finished: 12 of 12\s+status: completed",
        r"merged epochs: 0\.\.11 from 2 log files",
        r"keeps the one from training_log_2026_11_10_08_30_00\.txt \(epoch time 9\.8 s\)",
        r"best epoch: 11 ",
    ],
}

#: Files each script must leave in WORK_DIR/<script stem>/.
OUTPUTS: dict[str, list[str]] = {
    "fuse_with_spec.py": ["ensemble_spec.json", "fused/heart_001.nii.gz", "fused/heart_001.npz"],
    "tune_weights.py": ["tuned_spec.json", "tuned_spec_gains.png", "fused_tuned/heart_005.nii.gz"],
    "postprocess_array_and_folder.py": [
        "postprocessing_plan.json",
        "postprocessed/heart_002.nii.gz",
    ],
    "evaluate_folder.py": ["evaluation.json", "evaluation_per_case.csv"],
    "build_submission.py": ["submission.zip", "submission.manifest.json", "preview.png"],
    "read_training_log.py": ["training_curves.png"],
}


def _run(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -W error examples/SCRIPT ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_every_example_file_is_covered_and_listed():
    files = {p.name for p in EXAMPLES.iterdir() if not p.name.startswith((".", "__pycache__"))}
    # _common.py is the scripts' shared helper (work folder, label files), not an example
    assert files == {*SCRIPTS, NOTEBOOK.name, "README.md", "_common.py"}, (
        "every file in examples/ must be run by tests/test_examples.py (add it to SCRIPTS)"
    )
    assert set(OUTPUTS) == set(SCRIPTS)
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name in [*SCRIPTS, NOTEBOOK.name]:
        assert f"`{name}`" in readme, f"examples/README.md must list {name}"
    for script in SCRIPTS:
        assert 'if __name__ == "__main__":' in (EXAMPLES / script).read_text(encoding="utf-8")


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_script_runs(script: str, tmp_path: Path):
    result = _run(script, str(tmp_path))
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    matches = {}
    for pattern in SCRIPTS[script]:
        match = re.search(pattern, result.stdout, flags=re.MULTILINE)
        assert match, f"{script}: no output line matches {pattern!r}:\n{result.stdout}"
        matches.update(match.groupdict())
    work = tmp_path / Path(script).stem
    for name in OUTPUTS[script]:
        assert (work / name).is_file(), f"{script} did not write {name}"

    # what the examples claim, checked on their numbers
    if script == "tune_weights.py":
        assert float(matches["tuned"]) > float(matches["equal"]) + 0.05
    if script == "evaluate_folder.py":
        # "skip" leaves out both cases without RV in the reference: its mean is case 0's Dice
        assert matches["skip_mean"] == matches["skip_case0"] == matches["nan_case0"]
        summary = json.loads((work / "evaluation.json").read_text())
        assert summary["mean"]["3"]["num_in_mean"] == 2  # nnU-Net's convention: NaN left out
    if script == "build_submission.py":
        from nnunet_ext.submission import check_submission

        images = work / "nnUNet_raw" / "Dataset501_SyntheticHeart" / "imagesTs"
        report = check_submission(
            work / "submission.zip", images_dir=images, label_ids=[0, 1, 2, 3]
        )
        assert [c.case for c in report.cases] == ["heart_000", "heart_001", "heart_002"]


def test_example_reruns_into_the_same_folder(tmp_path: Path):
    for _ in range(2):
        result = _run("postprocess_array_and_folder.py", str(tmp_path))
        assert result.returncode == 0, result.stderr


def test_example_without_folder_uses_and_removes_a_temporary_folder(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in {"TEMP", "TMP"}}
    env["TMPDIR"] = str(tmp_path)
    result = _run("fuse_with_spec.py", env=env)
    assert result.returncode == 0, result.stderr
    assert f"under {tmp_path}" in result.stdout
    assert list(tmp_path.iterdir()) == []


def _notebook() -> dict[str, object]:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def test_notebook_is_valid_nbformat4_without_outputs():
    notebook = _notebook()
    assert notebook["nbformat"] == 4
    assert isinstance(notebook["nbformat_minor"], int)
    assert notebook["nbformat_minor"] >= 5
    assert isinstance(notebook["metadata"], dict)
    cells = notebook["cells"]
    assert isinstance(cells, list)
    assert cells
    ids = set()
    for cell in cells:
        assert cell["cell_type"] in {"code", "markdown"}
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", cell["id"]), cell["id"]
        ids.add(cell["id"])
        assert isinstance(cell["metadata"], dict)
        assert isinstance(cell["source"], list)
        assert all(isinstance(s, str) for s in cell["source"])
        if cell["cell_type"] == "code":
            assert cell["execution_count"] is None
            assert cell["outputs"] == []
        else:
            assert set(cell) == {"cell_type", "id", "metadata", "source"}
    assert len(ids) == len(cells), "cell ids must be unique"


def test_notebook_cells_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    namespace: dict[str, object] = {"__name__": "__main__"}
    cells = _notebook()["cells"]
    assert isinstance(cells, list)
    code_cells = [c for c in cells if c["cell_type"] == "code"]
    for index, cell in enumerate(code_cells):
        source = "".join(cell["source"])
        exec(compile(source, f"{NOTEBOOK.name}[code cell {index}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "fused cases: ('heart_000', 'heart_001', 'heart_002')" in out
    scores = namespace["scores"]
    assert isinstance(scores, dict)
    # the tour's story: tuned weights beat equal ones, postprocessing helps on top (mean Dice)
    assert scores["fused"][-1] > scores["fused_equal"][-1]
    assert scores["fused_postprocessed"][-1] > scores["fused"][-1]
    work = namespace["WORK"]
    assert isinstance(work, Path)
    assert work.parent == tmp_path
    assert not work.exists(), "the last cell removes the temporary folder"
