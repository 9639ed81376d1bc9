"""The README's and the docs' promises: the README's Quick start has exactly two commands, CI runs
the second, every ``nnunet-ext`` command line of the README and of ``docs/`` parses as written,
the README's cheap commands run, and the Python example (docs/get-started/python-api.md) runs as
written."""

from __future__ import annotations

import json
import re
import runpy
import shlex
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
#: The hand-written documentation pages (the command and API reference are generated).
DOC_PAGES = sorted((ROOT / "docs").rglob("*.md"))
PYTHON_PAGE = ROOT / "docs" / "get-started" / "python-api.md"


def _blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_quick_start_is_the_first_section_with_two_commands():
    sections = re.findall(r"^## (.+)$", README, flags=re.M)
    assert sections[0] == "Quick start"
    quick_start = README.split("## Quick start", 1)[1]
    first_block = re.search(r"```\w*\n(.*?)```", quick_start, flags=re.S)
    assert first_block is not None
    commands = [line for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["python3 run.py demo", "python3 run.py test"]


def test_ci_runs_the_readme_test_command():
    assert "python3 run.py test" in (ROOT / ".ci" / "run").read_text()


def test_python_api_example_runs(tmp_path, capsys):
    (block,) = [b for b in _blocks("python", PYTHON_PAGE.read_text()) if "fuse_probabilities" in b]
    script = tmp_path / "readme_example.py"
    script.write_text(block)
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out
    assert re.match(r"\[\s*0\.\d+\s+0\.\d+\s+0\.\d+\s*\]", printed.strip())


def test_every_command_in_the_umbrella_is_documented():
    from nnunet_ext.cli import COMMANDS

    commands = README.split("## Commands", 1)[1].split("## Documentation", 1)[0]
    for command in COMMANDS:
        assert f"nnunet-ext {command}" in commands


def _commands(text: str) -> list[str]:
    """Every ``nnunet-ext ...`` line of the bash blocks of ``text``, continuations joined."""
    commands = []
    for block in _blocks("bash", text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("nnunet-ext "):
                commands.append(line)
    return commands


README_COMMANDS = _commands(README)
#: (page, command) of every page under docs/.
DOC_COMMANDS = [
    (page.relative_to(ROOT).as_posix(), command)
    for page in DOC_PAGES
    for command in _commands(page.read_text())
]


def _parse(argv):
    from nnunet_ext._cli import finish_args
    from nnunet_ext.cli import _with_default_subcommand, build_parser

    args = build_parser().parse_args(_with_default_subcommand(argv))
    return finish_args(args, getattr(args, "_required", ()))


def test_the_readme_shows_every_command():
    from nnunet_ext.cli import COMMANDS

    assert {shlex.split(c)[1] for c in README_COMMANDS} == set(COMMANDS)


def test_the_docs_show_every_command():
    from nnunet_ext.cli import COMMANDS

    assert {shlex.split(c)[1] for _, c in DOC_COMMANDS} == set(COMMANDS)


@pytest.mark.parametrize(
    ("page", "command"),
    [("README.md", c) for c in README_COMMANDS] + DOC_COMMANDS,
    ids=[f"README.md: {c}" for c in README_COMMANDS] + [f"{p}: {c}" for p, c in DOC_COMMANDS],
)
def test_every_documented_command_parses_as_written(page, command, capsys):
    argv = shlex.split(command)[1:]
    args = _parse(argv)  # a usage error exits 2 here
    assert args._prog == f"nnunet-ext {argv[0]}", page
    assert "deprecated" not in capsys.readouterr().err, page


def _write(path: Path, array: np.ndarray) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((1.0, 1.0, 2.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def test_the_cheap_readme_commands_run_as_written(tmp_path, monkeypatch, capsys):
    """postprocess apply, evaluate and submission build/check run for real, in the README's
    order, on tiny data laid out under the README's folder names."""
    from nnunet_ext.cli import main

    rng = np.random.default_rng(0)
    dataset = {"labels": {"background": 0, "a": 1, "b": 2, "c": 3}, "file_ending": ".nii.gz"}
    for folder in ("fused", "labelsTs"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "dataset.json").write_text(json.dumps(dataset))
    for case in ("case_0", "case_1"):
        reference = np.zeros((6, 16, 16), np.uint8)
        reference[1:5, 2:8, 2:8], reference[1:5, 9:14, 3:9], reference[2:4, 3:12, 10:14] = 1, 2, 3
        noisy = np.where(rng.random(reference.shape) < 0.05, 0, reference)
        _write(tmp_path / "labelsTs" / f"{case}.nii.gz", reference)
        _write(tmp_path / "fused" / f"{case}.nii.gz", noisy)
        _write(tmp_path / "imagesTs" / f"{case}_0000.nii.gz", reference * 10)
    monkeypatch.chdir(tmp_path)
    cheap = [
        c
        for c in README_COMMANDS
        if c.startswith(
            ("nnunet-ext postprocess apply -i fused -o clean --keep", "nnunet-ext evaluate")
        )
        or c.startswith("nnunet-ext submission")
    ]
    assert len(cheap) == 6
    for command in cheap:
        assert main(shlex.split(command)[1:]) == 0, (command, capsys.readouterr().err)
    assert (tmp_path / "summary.json").is_file()
    assert (tmp_path / "submission.zip").is_file()
