"""The demo's record, ``demo_summary.json``: what a run measured, for scripts to read back.

Written at the end of every demo run, in the demo folder, as strict JSON (``schema_version``
1; NaN as ``null``)::

    {"schema_version": 1, "seed": 3, "config": {"num_training": 10, "num_test": 12, ...},
     "dice": {"2d": {"myocardium": 0.91, "LV": 0.95, "RV": 0.83, "foreground mean": 0.9}, ...},
     "hd95": {...}, "timings": {"train/2d/fold_0": 41.2, ...}, "training": {...},
     "estimates": {...}}

``dice`` and ``hd95`` are per method (``2d``, ``3d_fullres``, ``ensemble (equal)``,
``ensemble (tuned)``, ``tuned + postprocessing``) and label name; ``estimates`` holds the
tuner's CV estimate beside the hold-out estimate (:mod:`nnunet_ext.demo.pipeline`).
``benchmarks/bench_tune_draws.py`` reads it with :func:`read_record`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nnunet_ext.demo.config import DemoConfig
from nnunet_ext.demo.summary import DemoResult
from nnunet_ext.io.atomic import write_json
from nnunet_ext.io.json_files import load_json
from nnunet_ext.io.schema import check_keys, expect_mapping, invalid_key

__all__ = ["RECORD_NAME", "SCHEMA_VERSION", "read_record", "write_record"]

SCHEMA_VERSION = 1
#: The record's file name in the demo folder.
RECORD_NAME = "demo_summary.json"
_KEYS = ("schema_version", "seed", "config", "dice", "hd95", "timings", "training", "estimates")


def write_record(result: DemoResult, config: DemoConfig, folder: str | os.PathLike[str]) -> Path:
    """Write ``folder/demo_summary.json`` and return its path."""
    return write_json(
        Path(folder) / RECORD_NAME,
        {
            "schema_version": SCHEMA_VERSION,
            "seed": config.seed,
            "config": {**asdict(config), "training_env": dict(config.training_env)},
            "dice": result.dice,
            "hd95": result.hd95,
            "timings": result.timings,
            "training": result.training,
            "estimates": result.estimates,
        },
    )


def _floats(table: Any, source: str, where: str) -> dict[str, dict[str, float]]:
    """A method -> label -> value table, ``null`` read as NaN."""
    out: dict[str, dict[str, float]] = {}
    for method, row in expect_mapping(table, source=source, where=where).items():
        values = expect_mapping(row, source=source, where=f"{where}.{method}")
        out[method] = {k: math.nan if v is None else float(v) for k, v in values.items()}
    return out


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a demo record strictly: unknown or missing keys and other versions are errors.

    Returns:
        The record, with ``dice``, ``hd95`` and ``estimates`` tables as floats (NaN for
        ``null``).

    Raises:
        InputError: For a wrong ``schema_version`` or an unknown or missing key.
    """
    source = os.fspath(path)
    data = expect_mapping(load_json(path), source=source, where=None)
    if data.get("schema_version") != SCHEMA_VERSION or isinstance(data.get("schema_version"), bool):
        raise invalid_key(
            source, data, "schema_version", str(SCHEMA_VERSION), fix="Run the demo again."
        )
    check_keys(data, source=source, where=None, allowed=_KEYS, required=_KEYS)
    record = dict(data)
    for key in ("dice", "hd95", "estimates"):
        record[key] = _floats(data[key], source, key)
    return record
