"""``nnunet-ext compare`` in-process: outputs, one-line errors, --common-cases, python -m."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_ext.cli import main

from ._data import evaluate, write_versions


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    write_versions(base, [0.03, 0.1], num_cases=4)
    return base


def test_compare_prints_and_writes_json_and_figure(root, tmp_path, capsys):
    out, png = tmp_path / "c.json", tmp_path / "c.png"
    argv = ["compare", "-i", str(root / "v0.json"), str(root / "v1.json")]
    code = main([*argv, "--names", "A", "B", "--json", str(out), "--figure", str(png)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "B = B against A = A:" in printed
    assert f"wrote {png} and {out}" in printed
    assert json.loads(out.read_text())["versions"][0] == {
        "name": "A",
        "path": str(root / "v0.json"),
    }
    assert png.stat().st_size > 0


def test_a_mismatch_is_one_line_and_exit_1_naming_the_file(root, tmp_path, capsys):
    b = evaluate(root, 1, tmp_path / "b.json", "--labels", "1", "2")
    capsys.readouterr()
    out = tmp_path / "c.json"
    assert main(["compare", "-i", str(root / "v0.json"), str(b), "--json", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"nnunet-ext compare: error: {b}: labels must be those of")
    assert not out.exists()


def test_missing_cases_name_the_flag_and_common_cases_compares_the_rest(root, tmp_path, capsys):
    folder = tmp_path / "subset"
    folder.mkdir()
    for path in (root / "v1").iterdir():
        if path.name != "case_002.nii.gz":
            (folder / path.name).symlink_to(path)
    b = tmp_path / "b.json"
    argv = ["-q", "evaluate", "-i", str(folder), "-r", str(root / "ref"), "--json", str(b)]
    assert main([*argv, "--allow-missing", "--dataset-json", str(root / "ref/dataset.json")]) == 0
    capsys.readouterr()
    compare = ["compare", "-i", str(root / "v0.json"), str(b)]
    assert main(compare) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "1 missing (case_002)" in line
    assert "pass --common-cases to compare the 3 cases all files have" in line
    assert main([*compare, "--common-cases"]) == 0
    assert "3 cases compared (left out, not in every file: v0: 1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--samples", "5"], "--samples must be an integer >= 100; got 5"),
        (["--names", "A"], "--names must be 2 distinct non-empty names"),
        (["--figure", "{tmp}/c.pdf"], "--figure must be a .png file"),
    ],
)
def test_bad_options_are_one_line(root, tmp_path, capsys, extra, message):
    argv = ["compare", "-i", str(root / "v0.json"), str(root / "v1.json")]
    assert main([*argv, *(e.format(tmp=tmp_path) for e in extra)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line


def test_one_input_is_an_error(root, capsys):
    assert main(["compare", "-i", str(root / "v0.json")]) == 1
    assert "-i/--input must list at least two evaluation files" in capsys.readouterr().err


def test_python_m_help():
    result = subprocess.run(
        [sys.executable, "-m", "nnunet_ext.compare", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: nnunet-ext compare ")
    assert "--common-cases" in result.stdout
