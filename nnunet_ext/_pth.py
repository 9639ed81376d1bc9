"""Point nnU-Net's trainer lookup at nnunet_ext's shim folder, at interpreter start.

Installed at the site-packages root as ``_nnunet_ext_pth.py`` and imported from
``nnunet_ext.pth``, so ``nnUNetv2_train ... -tr CustomEpochs`` works in a new shell with nothing
set. It appends ``<nnunet_ext>/_nnunet_shim`` to ``nnUNet_extTrainer`` (keeping what the user
set) without importing nnunet_ext itself, and never raises: a broken .pth must not break every
Python start.
"""

import importlib.util
import os
import sys


def _register() -> None:
    spec = importlib.util.find_spec("nnunet_ext")
    if spec is None or not spec.submodule_search_locations:
        return
    shim = os.path.join(next(iter(spec.submodule_search_locations)), "_nnunet_shim")
    if not os.path.isdir(shim):
        return
    current = os.environ.get("nnUNet_extTrainer", "")
    entries = [entry for entry in current.split(os.pathsep) if entry]
    if shim not in entries:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([*entries, shim])


#: Commands whose ``-tr NAME`` is checked at start, before they create anything.
_TRAINER_COMMANDS = ("nnUNetv2_train", "nnUNetv2_predict")


def _trainer_name_error() -> str | None:
    """The one-line error for a malformed ``-tr CustomEpochs_...`` of nnU-Net's commands.

    ``nnUNetv2_predict`` creates its output folder and then fails on the missing model folder
    with a traceback, and ``nnUNetv2_train`` would import torch first: the name is checked here,
    at interpreter start, with ``nnunet_ext/trainers/settings.py`` loaded on its own (pure
    Python, no package import).
    """
    argv = list(getattr(sys, "argv", None) or [])
    if not argv or os.path.basename(argv[0]) not in _TRAINER_COMMANDS:
        return None
    names = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-tr"]
    names += [arg[4:] for arg in argv if arg.startswith("-tr=")]
    if not names:
        return None
    spec = importlib.util.find_spec("nnunet_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(next(iter(spec.submodule_search_locations)), "trainers", "settings.py")
    module_spec = importlib.util.spec_from_file_location("_nnunet_ext_name_check", path)
    if module_spec is None or module_spec.loader is None:
        return None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # dataclasses look their module up
    try:
        module_spec.loader.exec_module(module)
        module.parse_trainer_name(names[-1])
    except module.SettingsError as err:
        return f"nnunet_ext: error: {err}"
    finally:
        sys.modules.pop(module_spec.name, None)
    return None


try:
    _register()
    _error = _trainer_name_error()
except Exception:
    _error = None
if _error is not None:
    sys.stderr.write(_error + "\n")
    sys.stderr.flush()
    os._exit(1)
