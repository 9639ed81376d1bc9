"""Point nnU-Net's trainer lookup at nnunet_ext's shim folder, at interpreter start.

Installed at the site-packages root as ``_nnunet_ext_pth.py`` and imported from
``nnunet_ext.pth``, so ``nnUNetv2_train ... -tr CustomEpochs`` works in a new shell with nothing
set. It appends ``<nnunet_ext>/_nnunet_shim`` to ``nnUNet_extTrainer`` (keeping what the user
set) without importing nnunet_ext itself, and never raises: a broken .pth must not break every
Python start.
"""

import importlib.util
import os


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


try:
    _register()
except Exception:
    pass
