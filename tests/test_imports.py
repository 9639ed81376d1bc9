"""Import rule: only nnunet_ext.trainers and ``<feature>/engine.py`` modules import torch or
nnunetv2's training/inference.

Each check runs in a fresh interpreter, as a user's `--help` or notebook import would.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import nnunet_ext

HEAVY = ("torch", "nnunetv2.training", "nnunetv2.inference")
#: Imported only by ``--executor ray`` (the optional extra).
RAY = ("ray",)


def _torch_free_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(nnunet_ext.__path__, "nnunet_ext."):
        if info.name.startswith(("nnunet_ext.trainers", "nnunet_ext._nnunet_shim")):
            continue
        if info.name.endswith(".engine"):  # a feature's torch side (predict, export, validate)
            continue
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


def _heavy_modules_after(code: str, heavy: tuple[str, ...] = HEAVY + RAY) -> list[str]:
    probe = f"{code}\nimport sys; print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])  # a printed list of strings


def test_every_module_outside_trainers_imports_without_torch():
    modules = _torch_free_modules()
    assert "nnunet_ext.io" in modules
    engines = {
        "nnunet_ext.predict.engine",
        "nnunet_ext.export.engine",
        "nnunet_ext.validate.engine",
    }
    assert engines.isdisjoint(modules)
    imports = "\n".join(f"import {m}" for m in modules)
    assert _heavy_modules_after(imports) == []


@pytest.mark.parametrize("command", sorted(importlib.import_module("nnunet_ext.cli").COMMANDS))
def test_help_of_every_command_is_torch_free(command):
    code = (
        "import contextlib, io\n"
        "from nnunet_ext.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main([{command!r}, '--help'])"
    )
    assert _heavy_modules_after(code) == []


def test_trainer_settings_import_without_torch():
    code = (
        "import nnunet_ext.trainers.settings, nnunet_ext.trainers.early_stopping, "
        "nnunet_ext.trainers.cooldown, nnunet_ext.trainers.label_tracking, "
        "nnunet_ext.trainers.record"
    )
    assert _heavy_modules_after(code) == []


def test_no_module_imports_ray():
    """Only ``--executor ray`` imports Ray: no module does, trainers and engine included."""
    names = [
        info.name
        for info in pkgutil.walk_packages(nnunet_ext.__path__, "nnunet_ext.")
        if not info.name.endswith("__main__") and not info.name.startswith("nnunet_ext._nnunet_")
    ]
    assert {"nnunet_ext._ray", "nnunet_ext.predict.ray_pool", "nnunet_ext.predict.engine"} <= set(
        names
    )
    imports = "\n".join(f"import {m}" for m in names)
    assert _heavy_modules_after(imports, RAY) == []
