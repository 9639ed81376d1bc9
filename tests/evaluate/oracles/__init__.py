"""The official scorers as test oracles, run in their own venv (``.venv-oracles``).

``python3 run.py test`` creates that venv from ``requirements.txt`` beside this file and passes
its interpreter in ``NNUNET_EXT_ORACLE_PYTHON``; a plain ``pytest`` creates it on first use
through the same function of ``run.py``. Each call starts ``runner.py`` once, with one JSON
request for a whole fixture set, so the oracles cost one interpreter start per set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
RUNNER = Path(__file__).with_name("runner.py")


def oracle_python() -> str:
    """The oracle venv's interpreter, created (once) by ``run.py`` when not given."""
    given = os.environ.get("NNUNET_EXT_ORACLE_PYTHON")
    if given:
        return given
    spec = importlib.util.spec_from_file_location("_nnunet_ext_run", ROOT / "run.py")
    assert spec is not None
    assert spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    return str(run.ensure_oracle_venv())


def ask(request: dict[str, Any], *, timeout: float = 600) -> Any:
    """Send one request to the oracle runner and return its JSON answer."""
    done = subprocess.run(
        [oracle_python(), str(RUNNER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"oracle runner failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)
