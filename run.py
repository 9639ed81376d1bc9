#!/usr/bin/env python3
"""Run nnunet_ext from a fresh clone: ``python3 run.py demo`` or ``python3 run.py test``.

Creates (or reuses) a virtual environment in ``.venv`` with nnunet_ext installed in editable
mode plus the test tools, then runs the demo (``nnunet-ext demo``) or the test suite (pytest).
For the tests it also creates (or reuses) ``.venv-oracles``: the official scorers the parity
tests compare against (``tests/evaluate/oracles/requirements.txt``), kept out of ``.venv``
because one of them is AGPL-licensed and none is a dependency of nnunet_ext.
Extra arguments are passed through. Only the Python standard library is needed to start.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".nnunet_ext-install-stamp"
ORACLE_VENV = ROOT / ".venv-oracles"
ORACLE_REQUIREMENTS = ROOT / "tests" / "evaluate" / "oracles" / "requirements.txt"
#: Environment variable naming the oracle interpreter for the tests.
ORACLE_ENV = "NNUNET_EXT_ORACLE_PYTHON"


def venv_python(venv_dir: Path = VENV) -> Path:
    """Path of a virtual environment's interpreter (default ``.venv``)."""
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pip_install(python: Path, *args: str) -> None:
    """``python -m pip install -q ARGS``, failing loudly."""
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    subprocess.run(cmd, check=True)


def ensure_oracle_venv() -> Path:
    """Create ``.venv-oracles`` if needed and (re)install it when its requirements changed.

    Keyed like ``.venv``: a stamp holds the hash of the pinned requirements file.
    """
    python = venv_python(ORACLE_VENV)
    stamp = ORACLE_VENV / ".oracle-install-stamp"
    wanted = hashlib.sha256(ORACLE_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    print(
        f"run.py: installing the test oracles into {ORACLE_VENV} (first run: a minute)", flush=True
    )
    venv.EnvBuilder(with_pip=True, clear=True).create(ORACLE_VENV)
    pip_install(python, "-r", str(ORACLE_REQUIREMENTS))
    stamp.write_text(wanted)
    return python


def ensure_venv() -> Path:
    """Create .venv if needed and (re)install nnunet_ext when pyproject.toml changed."""
    python = venv_python()
    if not python.exists():
        print(f"run.py: creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != wanted:
        print(
            "run.py: installing nnunet_ext and its dependencies (first run: a few minutes)",
            flush=True,
        )
        pip_install(python, "-e", f"{ROOT}[test,ray]")
        STAMP.write_text(wanted)
    return python


def main(argv: list[str]) -> int:
    """Dispatch ``demo`` or ``test``."""
    if not argv or argv[0] not in {"demo", "test"}:
        print("usage: python3 run.py demo [DEMO ARGS] | test [PYTEST ARGS]", file=sys.stderr)
        return 2
    python = ensure_venv()
    command, rest = argv[0], argv[1:]
    if command == "demo":
        cmd = [str(python), "-m", "nnunet_ext", "demo", *rest]
        env = None
    else:
        cmd = [str(python), "-m", "pytest", *rest]
        env = {**os.environ, ORACLE_ENV: str(ensure_oracle_venv())}
    return subprocess.run(cmd, cwd=ROOT, check=False, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
