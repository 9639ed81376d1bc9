"""What CONTRIBUTING claims, enforced: ruff, ruff format and mypy --strict are clean.

Each tool runs as ``python -m <tool>`` with the interpreter of the test run (so the versions of
the ``test`` extra), with its configuration from ``pyproject.toml``, and a failure shows the
tool's own output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What ruff checks and formats: the package, the tests, the scripts and the docs' build hook.
RUFF_PATHS = ["nnunet_ext", "tests", "benchmarks", "examples", "run.py", "docs/_hooks.py"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["ruff", "check", "--no-cache", *RUFF_PATHS], id="ruff-check"),
        pytest.param(["ruff", "format", "--check", "--no-cache", *RUFF_PATHS], id="ruff-format"),
        # files, strictness and overrides come from [tool.mypy] in pyproject.toml
        pytest.param(["mypy"], id="mypy-strict"),
    ],
)
def test_lint_is_clean(command: list[str]):
    result = _run(*command)
    assert result.returncode == 0, (
        f"`{' '.join(command)}` failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    )


def test_mypy_runs_strict_on_the_package():
    """The mypy configuration the test relies on: strict, on the package and the docs hook."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert "nnunet_ext" in config["files"]
    assert "docs/_hooks.py" in config["files"]
