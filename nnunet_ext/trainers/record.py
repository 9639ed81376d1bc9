"""The run record ``<fold>/nnunet_ext_training.json``: its keys and a reader for every version.

Pure Python (no torch): the monitor reads records too.

* ``schema_version`` 1: settings, versions, status, stop, best epoch/EMA.
* ``schema_version`` 2 adds ``cooldown`` (the cooldown after a stop rule fired, or ``null``),
  ``labels`` (per label: best epoch and EMA, and the ``checkpoint_best_<label>.pth`` written)
  and ``forgetting`` (the labels the forgetting guard flagged, with the numbers).

:func:`read_run_record` returns every record in the version-2 shape (a version-1 record gets
``cooldown: null``, ``labels: []``, ``forgetting: []``).
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any

from nnunet_ext.io import load_json

__all__ = [
    "RUN_RECORD_NAME",
    "SCHEMA_VERSION",
    "nnunetv2_version",
    "read_run_record",
    "upgrade_run_record",
]

#: File name of the run record in the fold folder.
RUN_RECORD_NAME = "nnunet_ext_training.json"
#: Version written by this nnunet_ext.
SCHEMA_VERSION = 2

_V1_KEYS = frozenset(
    {
        "schema_version",
        "nnunet_ext_version",
        "nnunetv2_version",
        "torch_version",
        "trainer",
        "trainer_bases",
        "settings",
        "settings_sources",
        "status",
        "stop",
        "epochs_completed",
        "best_epoch",
        "best_ema",
        "started",
        "updated",
    }
)
_V2_KEYS = _V1_KEYS | {"cooldown", "labels", "forgetting"}
_KEYS = {1: _V1_KEYS, 2: _V2_KEYS}


def upgrade_run_record(data: Any, *, source: str = RUN_RECORD_NAME) -> dict[str, Any]:
    """Check a parsed run record and return it in the current (version 2) shape.

    Args:
        data: The parsed JSON.
        source: Name for error messages.

    Returns:
        A new dict with every version-2 key.

    Raises:
        ValueError: If it is not an object, has an unknown ``schema_version`` or unknown keys.

    Examples:
        >>> old = {"schema_version": 1, "status": "completed", "settings": {"num_epochs": 3}}
        >>> new = upgrade_run_record(old)
        >>> new["schema_version"], new["cooldown"], new["labels"], new["forgetting"]
        (2, None, [], [])
        >>> upgrade_run_record({"schema_version": 7})
        Traceback (most recent call last):
        ...
        ValueError: nnunet_ext_training.json: schema_version must be 1 or 2; got 7. ...
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: must hold a JSON object; got {type(data).__name__}.")
    version = data.get("schema_version")
    if version not in _KEYS or isinstance(version, bool):
        raise ValueError(
            f"{source}: schema_version must be 1 or 2; got {version!r}. It was written by a "
            "newer nnunet_ext or is not a run record; upgrade nnunet_ext."
        )
    unknown = sorted(set(data) - _KEYS[version])
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {', '.join(map(repr, unknown))} for schema_version "
            f"{version}; expected only {', '.join(sorted(_KEYS[version]))}."
        )
    out = dict(data)
    if version == 1:
        out.update(schema_version=SCHEMA_VERSION, cooldown=None, labels=[], forgetting=[])
    for key in ("cooldown", "labels", "forgetting"):
        out.setdefault(key, None if key == "cooldown" else [])
    return out


def read_run_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``nnunet_ext_training.json`` (any version) in the version-2 shape.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not valid JSON or not a run record.
    """
    file = Path(path)
    return upgrade_run_record(load_json(file), source=str(file))


def nnunetv2_version() -> str:
    """The installed nnunetv2's version (the record's ``nnunetv2_version``), or ``"unknown"``."""
    try:
        return importlib.metadata.version("nnunetv2")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
