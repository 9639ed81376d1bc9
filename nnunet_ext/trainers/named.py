"""Trainer classes whose names carry their settings: ``CustomEpochs_e250_p30`` and the like.

``getattr(nnunet_ext.trainers.named, "CustomEpochs_e250_p30")`` creates (once, then cached) a
subclass of :class:`~nnunet_ext.trainers.CustomEpochs` with that exact ``__name__``, so nnU-Net's
results folder is ``CustomEpochs_e250_p30__nnUNetPlans__3d_fullres`` and records the settings.
The class is defined in this module under its own name, so it pickles by reference.
"""

from __future__ import annotations

from typing import Any

from nnunet_ext.trainers.custom_epochs import CustomEpochs, nnUNetTrainerCustomEpochs
from nnunet_ext.trainers.settings import (
    SettingsError,
    install_settings_error_hook,
    parse_trainer_name,
)

__all__ = ["named_trainer"]

_BASES: dict[str, type] = {
    "CustomEpochs": CustomEpochs,
    "nnUNetTrainerCustomEpochs": nnUNetTrainerCustomEpochs,
}
_CACHE: dict[str, type] = {}


def named_trainer(name: str) -> type:
    """Return the trainer class for ``name`` (e.g. ``"CustomEpochs_e250_p30"``).

    Raises:
        AttributeError: If ``name`` is not one of our names with a settings suffix.
        SettingsError: If it is one of ours but the suffix is malformed. nnU-Net's trainer
            lookup (``nnUNetv2_train -tr NAME``) does not catch it, so the one-line hook is
            installed first: the command prints ``nnunet_ext: error: ...`` and exits 1 before
            it creates anything.
    """
    if name in _CACHE:
        return _CACHE[name]
    try:
        base_name, settings = parse_trainer_name(name)
    except SettingsError:
        install_settings_error_hook()
        raise
    if base_name not in _BASES or not settings:
        raise AttributeError(name)
    base = _BASES[base_name]
    cls = type(
        name,
        (base,),
        {
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"{base_name} with settings from its name: {settings}.",
            "nnunet_ext_name_settings": dict(settings),
        },
    )
    _CACHE[name] = cls
    return cls


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return named_trainer(name)
