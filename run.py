#!/usr/bin/env python3
"""Run nnunet_ext from a fresh clone: ``python3 run.py demo`` or ``python3 run.py test``.

Creates (or reuses) a virtual environment in ``.venv`` with nnunet_ext installed in editable
mode plus the test tools, then runs the demo (``nnunet-ext demo``) or the test suite (pytest).
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


def venv_python() -> Path:
    """Path of the virtual environment's interpreter."""
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


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
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-e",
                f"{ROOT}[test,ray]",
            ],
            check=True,
        )
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
    else:
        cmd = [str(python), "-m", "pytest", *rest]
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
