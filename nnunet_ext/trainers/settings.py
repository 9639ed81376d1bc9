"""Training-length and early-stopping settings, from the environment and from trainer names.

Pure Python (no torch), so settings can be validated and tested without nnU-Net.

Environment variables (a value set to the empty string counts as unset):

==============================  ===================  ==========================================
variable                        default              meaning
==============================  ===================  ==========================================
``nnUNet_n_epochs``             1000                 epochs to train (positive int)
``nnUNet_iters_per_epoch``      250                  training iterations per epoch
``nnUNet_val_iters_per_epoch``  50                   validation iterations per epoch
``nnUNet_patience``             unset (off)          stop after this many epochs without
                                                     improvement of the EMA pseudo-Dice
``nnUNet_min_delta``            0                    an improvement must exceed this (float ≥ 0)
``nnUNet_min_epochs``           0                    never stop early before this many epochs
``nnUNet_target_dice``          unset (off)          stop once the EMA pseudo-Dice reaches this
``nnUNet_cooldown_epochs``      0 (off)              when a stop rule fires, train this many more
                                                     epochs with the learning rate annealed to 0
``nnUNet_label_checkpoints``    0 (off)              1: write ``checkpoint_best_<label>.pth``
                                                     when a label's EMA pseudo-Dice is a new best
``nnUNet_forgetting_fraction``  0.5                  a label is forgotten when its EMA stays below
                                                     this fraction of its best ...
``nnUNet_forgetting_epochs``    20                   ... for this many epochs
``nnUNet_stop_on_forgetting``   0 (off)              1: forgetting is a stop rule
``nnUNet_seed``                 unset (off)          seed Python's, NumPy's and torch's random
                                                     generators when the trainer is created
==============================  ===================  ==========================================

``nnUNet_seed`` makes a run bit-reproducible (same machine, software and thread count) only
together with nnU-Net's ``nnUNet_n_proc_DA=0``: nnU-Net's augmentation workers are not seeded,
and with them the order of the batches is not fixed either (the trainer logs a warning). A run
continued with ``--c`` is not the same as an uninterrupted one: the checkpoint does not hold
the generators' state. Under DDP, rank ``r`` uses ``seed + r`` (not run on real multiple GPUs).

Trainer names can carry the same settings, so that the results folder records them:
``CustomEpochs_e250_p30`` trains 250 epochs with patience 30. Grammar: the base name
(``CustomEpochs`` or ``nnUNetTrainerCustomEpochs``), then one or more ``_<key><value>`` tokens,
each key at most once, in any order:

=====  ==============================  =====================================
key    setting                         value
=====  ==============================  =====================================
``e``  ``num_epochs``                  int, e.g. ``e250``
``i``  ``num_iterations_per_epoch``    int, e.g. ``i100``
``v``  ``num_val_iterations_per_epoch``  int, e.g. ``v20``
``p``  ``patience``                    int, e.g. ``p30``
``m``  ``min_epochs``                  int, e.g. ``m100``
``d``  ``min_delta``                   decimal with ``p`` as the point: ``d0p001`` = 0.001
``t``  ``target_dice``                 decimal with ``p`` as the point: ``t0p9`` = 0.9
``c``  ``cooldown_epochs``             int ≥ 0, e.g. ``c20``
``l``  ``label_checkpoints``           ``l1`` (on) or ``l0`` (off)
=====  ==============================  =====================================

A value in the name wins over the environment variable; the environment fills the rest.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

__all__ = [
    "BASE_TRAINER_NAMES",
    "ENV_VARS",
    "MAX_SEED",
    "NAME_KEYS",
    "SettingsError",
    "TrainingSettings",
    "install_settings_error_hook",
    "parse_trainer_name",
    "resolve_settings",
]

#: Setting -> environment variable.
ENV_VARS: dict[str, str] = {
    "num_epochs": "nnUNet_n_epochs",
    "num_iterations_per_epoch": "nnUNet_iters_per_epoch",
    "num_val_iterations_per_epoch": "nnUNet_val_iters_per_epoch",
    "patience": "nnUNet_patience",
    "min_delta": "nnUNet_min_delta",
    "min_epochs": "nnUNet_min_epochs",
    "target_dice": "nnUNet_target_dice",
    "cooldown_epochs": "nnUNet_cooldown_epochs",
    "label_checkpoints": "nnUNet_label_checkpoints",
    "forgetting_fraction": "nnUNet_forgetting_fraction",
    "forgetting_epochs": "nnUNet_forgetting_epochs",
    "stop_on_forgetting": "nnUNet_stop_on_forgetting",
    "seed": "nnUNet_seed",
}

#: Trainer-name key -> setting.
NAME_KEYS: dict[str, str] = {
    "e": "num_epochs",
    "i": "num_iterations_per_epoch",
    "v": "num_val_iterations_per_epoch",
    "p": "patience",
    "m": "min_epochs",
    "d": "min_delta",
    "t": "target_dice",
    "c": "cooldown_epochs",
    "l": "label_checkpoints",
}

#: Names of our trainer classes that accept settings suffixes.
BASE_TRAINER_NAMES = ("CustomEpochs", "nnUNetTrainerCustomEpochs")

_NAME_RE = re.compile(r"^(?P<base>[A-Za-z][A-Za-z0-9]*?)(?P<tokens>(?:_[a-z][0-9p]+)+)$")
_TOKEN_RE = re.compile(r"_(?P<key>[a-z])(?P<value>[0-9p]+)")
_INT_RE = re.compile(r"^\+?[0-9]+$")
#: Largest ``nnUNet_seed`` (``numpy.random.seed`` takes 32-bit seeds).
MAX_SEED = 2**32 - 1


class SettingsError(ValueError):
    """A training setting (environment variable or trainer name) is invalid."""


def install_settings_error_hook() -> None:
    """Make an uncaught :class:`SettingsError` print one line instead of a traceback (exit 1)."""
    previous = sys.excepthook
    if getattr(previous, "_nnunet_ext_hook", False):
        return

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, SettingsError):
            sys.stderr.write(f"nnunet_ext: error: {error}\n")
            return
        previous(kind, error, tb)

    hook._nnunet_ext_hook = True  # type: ignore[attr-defined]
    sys.excepthook = hook


@dataclass(frozen=True)
class TrainingSettings:
    """Effective settings of one training run.

    Attributes:
        num_epochs: Epochs to train (nnU-Net's ``num_epochs``).
        num_iterations_per_epoch: Training iterations per epoch.
        num_val_iterations_per_epoch: Validation iterations per epoch.
        patience: Stop after this many epochs without improvement; ``None`` disables it.
        min_delta: The EMA must rise by more than this to count as an improvement.
        min_epochs: Never stop early before this many epochs are complete.
        target_dice: Stop once the EMA pseudo-Dice reaches this; ``None`` disables it.
        cooldown_epochs: Epochs trained after a stop rule fires, with the learning rate
            annealed to 0 on nnU-Net's poly curve; 0 ends training at once (as before).
        label_checkpoints: Write ``checkpoint_best_<label>.pth`` at each new best per-label EMA.
        forgetting_fraction: A label counts as forgotten once its EMA stays below this
            fraction of its best EMA ...
        forgetting_epochs: ... for this many consecutive epochs.
        stop_on_forgetting: Forgetting is a stop rule (reason ``"forgetting"``).
        seed: Seed of Python's, NumPy's and torch's random generators, set when the trainer is
            created (``None``: unseeded, as nnU-Net); see the module docstring for what it
            makes reproducible.
        sources: Where each value came from: ``"default"``, ``"env:<VAR>"`` or ``"name:<token>"``.
    """

    num_epochs: int = 1000
    num_iterations_per_epoch: int = 250
    num_val_iterations_per_epoch: int = 50
    patience: int | None = None
    min_delta: float = 0.0
    min_epochs: int = 0
    target_dice: float | None = None
    cooldown_epochs: int = 0
    label_checkpoints: bool = False
    forgetting_fraction: float = 0.5
    forgetting_epochs: int = 20
    stop_on_forgetting: bool = False
    seed: int | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def early_stopping(self) -> bool:
        """Whether any early-stop rule is on."""
        return self.patience is not None or self.target_dice is not None or self.stop_on_forgetting

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict (without ``sources``)."""
        data = asdict(self)
        data.pop("sources")
        return data

    def describe(self) -> str:
        """Return one line such as ``num_epochs=80 (env:nnUNet_n_epochs), patience=off, ...``."""
        parts = []
        for key, value in self.to_dict().items():
            shown = "off" if value is None else value
            parts.append(f"{key}={shown} ({self.sources.get(key, 'default')})")
        return ", ".join(parts)


def _positive_int(raw: str, *, what: str, example: str, allow_zero: bool = False) -> int:
    text = raw.strip()
    if not _INT_RE.match(text) or (int(text) == 0 and not allow_zero):
        kind = "a non-negative integer" if allow_zero else "a positive integer"
        raise SettingsError(f"{what} must be {kind}; got {raw!r}. Example: {example}.")
    return int(text)


def _float_in(
    raw: str, *, what: str, example: str, low: float, high: float | None, low_open: bool
) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    ok = math.isfinite(value) and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        upper = f"{high}]" if high is not None else "inf)"
        raise SettingsError(
            f"{what} must be a number in {bracket}{low}, {upper}; got {raw!r}. Example: {example}."
        )
    return value


def _flag(raw: str, *, what: str, example: str) -> bool:
    text = raw.strip()
    if text not in {"0", "1"}:
        raise SettingsError(f"{what} must be 0 or 1; got {raw!r}. Example: {example}.")
    return text == "1"


def _parse_value(setting: str, raw: str, what: str) -> int | float | bool:
    env = ENV_VARS[setting]
    if setting in {"label_checkpoints", "stop_on_forgetting"}:
        return _flag(raw, what=what, example=f"{env}=1")
    if setting == "cooldown_epochs":
        return _positive_int(raw, what=what, example=f"{env}=20", allow_zero=True)
    if setting == "seed":
        seed = _positive_int(raw, what=what, example=f"{env}=42", allow_zero=True)
        if seed > MAX_SEED:
            raise SettingsError(
                f"{what} must be at most {MAX_SEED} (NumPy's seed range); got {raw!r}. "
                f"Example: {env}=42."
            )
        return seed
    if setting == "forgetting_epochs":
        return _positive_int(raw, what=what, example=f"{env}=20")
    if setting == "forgetting_fraction":
        return _float_in(raw, what=what, example=f"{env}=0.5", low=0.0, high=1.0, low_open=True)
    if setting in {
        "num_epochs",
        "num_iterations_per_epoch",
        "num_val_iterations_per_epoch",
        "patience",
    }:
        return _positive_int(raw, what=what, example=f"{env}=80")
    if setting == "min_epochs":
        return _positive_int(raw, what=what, example=f"{env}=50", allow_zero=True)
    if setting == "min_delta":
        return _float_in(raw, what=what, example=f"{env}=0.001", low=0.0, high=None, low_open=False)
    return _float_in(raw, what=what, example=f"{env}=0.9", low=0.0, high=1.0, low_open=True)


def parse_trainer_name(name: str) -> tuple[str, dict[str, int | float | bool]]:
    """Split a trainer name into its base name and the settings its suffix carries.

    Args:
        name: E.g. ``"CustomEpochs_e250_p30"``.

    Returns:
        ``(base_name, settings)``; a name without suffix gives ``(name, {})``.

    Raises:
        SettingsError: If the name has our base name but a malformed suffix.

    Examples:
        >>> parse_trainer_name("CustomEpochs_e250_p30_d0p001")
        ('CustomEpochs', {'num_epochs': 250, 'patience': 30, 'min_delta': 0.001})
        >>> parse_trainer_name("CustomEpochs")
        ('CustomEpochs', {})
    """
    if name in BASE_TRAINER_NAMES:
        return name, {}
    base = next(
        (b for b in sorted(BASE_TRAINER_NAMES, key=len, reverse=True) if name.startswith(b + "_")),
        None,
    )
    if base is None:
        return name, {}
    grammar = (
        f"expected {base}_<key><value>[_<key><value>...] with keys "
        + ", ".join(f"{k}={s}" for k, s in NAME_KEYS.items())
        + " (decimals use 'p' as the point, e.g. d0p001); e.g. CustomEpochs_e250_p30"
    )
    tokens = name[len(base) :]
    if "__" in tokens or not _NAME_RE.match("X" + tokens):
        raise SettingsError(f"trainer name {name!r} is malformed: {grammar}.")
    settings: dict[str, int | float | bool] = {}
    for match in _TOKEN_RE.finditer(tokens):
        key, raw = match["key"], match["value"]
        if key not in NAME_KEYS:
            raise SettingsError(
                f"trainer name {name!r}: unknown key {key!r} in '_{key}{raw}'; {grammar}."
            )
        setting = NAME_KEYS[key]
        if setting in settings:
            raise SettingsError(f"trainer name {name!r}: key {key!r} given twice; {grammar}.")
        is_decimal = setting in {"min_delta", "target_dice"}
        if is_decimal:
            if raw.count("p") > 1 or raw.startswith("p") or raw.endswith("p"):
                raise SettingsError(
                    f"trainer name {name!r}: '_{key}{raw}' is not a decimal; {grammar}."
                )
            raw = raw.replace("p", ".")
        elif "p" in raw:
            raise SettingsError(
                f"trainer name {name!r}: '_{key}{raw}' must be an integer; {grammar}."
            )
        settings[setting] = _parse_value(
            setting, raw, f"trainer name {name!r} token '_{match['key']}{match['value']}'"
        )
    return base, settings


def resolve_settings(
    environ: Mapping[str, str] | None = None,
    *,
    name_settings: Mapping[str, int | float | bool] | None = None,
    name_tokens: str = "",
) -> TrainingSettings:
    """Combine defaults, environment variables and trainer-name settings; validate all.

    Args:
        environ: The environment to read (default ``os.environ``).
        name_settings: Settings carried by the trainer name (they win over the environment).
        name_tokens: The trainer name, recorded as the source of name settings.

    Returns:
        The effective settings.

    Raises:
        SettingsError: Naming the variable, its value and the accepted form.

    Examples:
        >>> s = resolve_settings({"nnUNet_n_epochs": "80", "nnUNet_patience": "10"})
        >>> (s.num_epochs, s.patience, s.sources["num_epochs"])
        (80, 10, 'env:nnUNet_n_epochs')
        >>> resolve_settings({"nnUNet_n_epochs": "80 epochs"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        nnunet_ext...SettingsError: nnUNet_n_epochs must be a positive integer; got '80 epochs'. ...
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting, var in ENV_VARS.items():
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        values[setting] = _parse_value(setting, raw, var)
        sources[setting] = f"env:{var}"
    for setting, value in (name_settings or {}).items():
        values[setting] = value
        sources[setting] = f"name:{name_tokens}" if name_tokens else "name"
    for setting in ENV_VARS:
        sources.setdefault(setting, "default")
    return TrainingSettings(**values, sources=sources)
