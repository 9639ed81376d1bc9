"""An nnU-Net ``plans.json``: read and checked, and the entries of its configurations.

A configuration's entry follows ``inherits_from`` as nnU-Net's ``PlansManager`` does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.json_files import load_json_object
from nnunet_ext.io.reader_writers import READER_WRITERS
from nnunet_ext.io.schema import describe, expect_mapping, invalid_key, key_path

__all__ = [
    "configuration_architecture",
    "configuration_entry",
    "configuration_patch_size",
    "load_plans",
]


def load_plans(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an nnU-Net ``plans.json`` for what our commands use of it.

    Checked: a JSON object whose ``image_reader_writer`` is a known reader/writer class name,
    and ``configurations`` (when present) an object of objects.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: For invalid JSON or a bad value, with its key.
    """
    plans = load_json_object(path)
    name = plans.get("image_reader_writer")
    if not isinstance(name, str) or name not in READER_WRITERS:
        raise invalid_key(
            path,
            plans,
            "image_reader_writer",
            f"one of {', '.join(sorted(READER_WRITERS))}",
            fix="Copy plans.json from the model folder (nnUNet_results/.../plans.json).",
        )
    configurations = plans.get("configurations", {})
    expect_mapping(configurations, source=path, where="configurations")
    for key, value in configurations.items():
        expect_mapping(value, source=path, where=key_path("configurations", str(key)))
    return plans


def configuration_entry(
    plans: Mapping[str, Any], configuration: str, key: str, plans_file: str | os.PathLike[str]
) -> tuple[str, Mapping[str, Any]]:
    """The configuration (or the one it inherits from) that defines ``key``, and its entry.

    As nnU-Net's ``PlansManager``: a configuration's own keys override those of the one it
    inherits from (``inherits_from``).
    """
    configurations = plans.get("configurations")
    name, seen = configuration, list[str]()
    while True:
        entry = configurations.get(name) if isinstance(configurations, Mapping) else None
        if not isinstance(entry, Mapping):
            found = "nothing" if entry is None else describe(entry)
            raise InputError(
                plans_file,
                "an object",
                found,
                key=f"configurations.{name}",
                fix="Copy plans.json again from the model folder nnUNetv2_train wrote.",
            )
        if key in entry or "inherits_from" not in entry or len(seen) > 16:
            return name, entry
        seen.append(name)
        name = str(entry["inherits_from"])


def configuration_patch_size(
    plans: Mapping[str, Any], configuration: str, plans_file: str | os.PathLike[str]
) -> list[int]:
    """The ``patch_size`` of a configuration of ``plans.json``, following ``inherits_from``.

    As nnU-Net's ``PlansManager``: a configuration's own keys override those of the one it
    inherits from.

    Raises:
        InputError: Naming the file and key, unless the configuration (or one it inherits from)
            is an object with a ``patch_size`` of 2 or 3 positive integers.

    Examples:
        >>> plans = {"configurations": {"3d": {"patch_size": [8, 32, 32]},
        ...                             "3d_big": {"inherits_from": "3d"}}}
        >>> configuration_patch_size(plans, "3d_big", "plans.json")
        [8, 32, 32]
        >>> plans["configurations"]["3d"]["patch_size"] = [8, 0]
        >>> configuration_patch_size(plans, "3d_big", "plans.json")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: plans.json: configurations.3d.patch_size must be a list...
    """
    name, entry = configuration_entry(plans, configuration, "patch_size", plans_file)
    patch = entry.get("patch_size")
    if not (
        isinstance(patch, list)
        and len(patch) in (2, 3)
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in patch)
    ):
        raise InputError(
            plans_file,
            "a list of 2 or 3 positive integers",
            "nothing" if patch is None else describe(patch),
            key=f"configurations.{name}.patch_size",
            fix="Copy plans.json again from the model folder nnUNetv2_train wrote.",
        )
    return list(patch)


def configuration_architecture(
    plans: Mapping[str, Any], configuration: str, plans_file: str | os.PathLike[str]
) -> dict[str, Any]:
    """The ``architecture`` of a configuration of ``plans.json``, following ``inherits_from``.

    nnU-Net's predictor builds the network from it: ``network_class_name`` (a string) and
    ``arch_kwargs`` (an object) must be there.

    Raises:
        InputError: Naming the file and key, when it is missing or malformed.

    Examples:
        >>> plans = {"configurations": {"2d": {"patch_size": [32, 32]}}}
        >>> configuration_architecture(plans, "2d", "plans.json")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: plans.json: configurations.2d.architecture must be ...
    """
    name, entry = configuration_entry(plans, configuration, "architecture", plans_file)
    architecture = entry.get("architecture")
    if not (
        isinstance(architecture, Mapping)
        and isinstance(architecture.get("network_class_name"), str)
        and isinstance(architecture.get("arch_kwargs"), Mapping)
    ):
        raise InputError(
            plans_file,
            "an object with network_class_name (a string) and arch_kwargs (an object), as "
            "nnU-Net 2.x plans have",
            "nothing" if architecture is None else describe(architecture),
            key=f"configurations.{name}.architecture",
            fix="Copy plans.json again from the model folder nnUNetv2_train wrote.",
        )
    return dict(architecture)
