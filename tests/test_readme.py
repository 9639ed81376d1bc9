"""The README's promises: the Quick start has exactly two commands, CI runs the second, and the
Python API example runs as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


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
    (block,) = [b for b in _blocks("python") if "fuse_probabilities" in b]
    script = tmp_path / "readme_example.py"
    script.write_text(block)
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out
    assert re.match(r"\[\s*0\.\d+\s+0\.\d+\s+0\.\d+\s*\]", printed.strip())


def test_every_command_in_the_umbrella_is_documented():
    from nnunet_ext.cli import COMMANDS

    commands = README.split("## Commands", 1)[1].split("## Python API", 1)[0]
    for command in COMMANDS:
        assert f"nnunet-ext {command}" in commands
