"""Check that nnU-Net's own trainer lookup finds our trainers, and explain why not.

Run as ``python -m nnunet_ext.trainers.lookup [--json] [NAME ...]`` (``nnunet-ext doctor`` runs
it in a subprocess, so that the doctor itself never imports torch). Exit 0 when every trainer
is found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["LookupResult", "check_trainer_lookup", "main", "shim_folder"]

DEFAULT_NAMES = ("CustomEpochs", "nnUNetTrainerCustomEpochs", "CustomEpochs_e2_p1")


@dataclass(frozen=True)
class LookupResult:
    """Outcome of ``recursive_find_trainer_class_by_name`` for one trainer name."""

    name: str
    found: bool
    module: str | None
    reason: str | None


def shim_folder() -> Path:
    """The folder that ``nnUNet_extTrainer`` must contain for nnU-Net to find our trainers."""
    return Path(__file__).resolve().parent.parent / "_nnunet_shim"


def _diagnose() -> str:
    value = os.environ.get("nnUNet_extTrainer")
    shim = str(shim_folder())
    if not value:
        return (
            "nnUNet_extTrainer is not set: the nnunet_ext.pth file did not run. Reinstall with "
            f"'pip install nnunet_ext' in this environment, or export nnUNet_extTrainer={shim}"
        )
    if shim not in value.split(os.pathsep):
        return (
            f"nnUNet_extTrainer={value!r} does not contain {shim}; "
            f"add it (separator {os.pathsep!r})"
        )
    return "nnU-Net's lookup did not return it (see the nnU-Net output for an import error)"


def check_trainer_lookup(names: Sequence[str] = DEFAULT_NAMES) -> list[LookupResult]:
    """Run nnU-Net's lookup for each name, exactly as ``nnUNetv2_train``/``_predict`` do.

    Args:
        names: Trainer class names.

    Returns:
        One result per name.
    """
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    results = []
    for name in names:
        chatter = io.StringIO()  # the lookup prints every module it inspects
        try:
            with contextlib.redirect_stdout(chatter):
                cls = recursive_find_trainer_class_by_name(name)
        except (RuntimeError, ImportError, AssertionError, ValueError) as err:
            reason = (
                _diagnose() if isinstance(err, RuntimeError) else f"{type(err).__name__}: {err}"
            )
            results.append(LookupResult(name, False, None, reason))
        else:
            results.append(LookupResult(name, True, f"{cls.__module__}.{cls.__qualname__}", None))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Print the lookup report (text or ``--json``); exit 1 if any trainer is missing."""
    parser = argparse.ArgumentParser(
        prog="python -m nnunet_ext.trainers.lookup", description=__doc__
    )
    parser.add_argument("names", nargs="*", default=list(DEFAULT_NAMES), help="trainer names")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    args = parser.parse_args(argv)
    results = check_trainer_lookup(args.names)
    try:
        version = importlib.metadata.version("nnunetv2")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    if args.json:
        report = {
            "nnunetv2_version": version,
            "nnUNet_extTrainer": os.environ.get("nnUNet_extTrainer"),
            "shim_folder": str(shim_folder()),
            "trainers": [asdict(r) for r in results],
        }
        print(json.dumps(report, indent=2))  # noqa: T201
    else:
        for r in results:
            status = f"found: {r.module}" if r.found else f"NOT found: {r.reason}"
            print(f"{r.name}: {status}")  # noqa: T201
    return 0 if all(r.found for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
