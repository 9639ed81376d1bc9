"""``nnunet-ext validate -i FOLD_DIR... --checkpoint NAME... [--npz] [--json OUT.json]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nnunet_ext import _cli

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Run nnU-Net's own validation for any checkpoint of a fold (checkpoint_final.pth, "
    "checkpoint_best.pth, checkpoint_best_<label>.pth ...) into fold_k/validation_<checkpoint "
    "stem>/, never touching fold_k/validation/, and print the per-label Dice of every "
    "checkpoint side by side. The folders are ordinary members for tune and ensemble."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``validate`` command's arguments."""
    _cli.add_fold_dirs(parser, multiple=True)
    parser.add_argument(
        "--checkpoint",
        nargs="+",
        required=True,
        metavar="NAME",
        help="checkpoint file names in each fold folder (.pth may be left out)",
    )
    parser.add_argument(
        "--npz",
        action="store_true",
        help="also export .npz probabilities (needed by tune and ensemble), as nnU-Net's --npz",
    )
    _cli.add_device(parser, "device for the validation (default: cuda when available, else cpu)")
    _cli.add_json(parser, "also write the Dice table as JSON")
    _cli.add_overwrite(parser, "redo validations whose output is complete")
    _cli.add_allow_unsafe_checkpoints(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``nnunet-ext validate``."""
    from nnunet_ext.io import write_json
    from nnunet_ext.io.outputs import Output, check_outputs
    from nnunet_ext.validate.jobs import format_side_by_side, plan_validation, read_validation_dice

    if args.json is not None:
        report = Output(Path(args.json), "--json", (".json",))
        check_outputs([report], inputs=args.input, overwrite=args.overwrite)
    jobs = plan_validation(
        args.input,
        args.checkpoint,
        npz=args.npz,
        overwrite=args.overwrite,
        allow_unsafe_checkpoints=args.allow_unsafe_checkpoints,
    )
    todo = [job for job in jobs if not job.done]
    if todo:
        from nnunet_ext.validate.engine import validate_checkpoint

        for job in todo:
            log.info("validating %s -> %s", job.checkpoint, job.output_dir)
            validate_checkpoint(
                job.fold_dir,
                job.checkpoint,
                job.output_dir,
                save_probabilities=args.npz,
                device=args.device,
                allow_unsafe_checkpoints=args.allow_unsafe_checkpoints,
            )
    for job in jobs:
        if job.done:
            log.info("%s is complete; kept (--overwrite redoes it)", job.output_dir)
    dice = {job: read_validation_dice(job.output_dir) for job in jobs}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for job, values in dice.items():
        title = f"{job.fold_dir.parent.name}/{job.fold_dir.name}"
        results.setdefault(title, {})[job.stem] = values
    print(format_side_by_side(results))
    if args.json is not None:
        write_json(
            args.json,
            {
                "schema_version": 1,
                "validations": [
                    {
                        "fold_dir": str(job.fold_dir),
                        "checkpoint": job.checkpoint.name,
                        "folder": str(job.output_dir),
                        "dice": values,
                    }
                    for job, values in dice.items()
                ],
            },
        )
    return 0


#: Library parameter names as this command's flags, for error messages.
_PARAMETER_FLAGS = {"fold_dirs": "-i/--input", "checkpoints": "--checkpoint"}

#: ``nnunet-ext validate`` and ``python -m nnunet_ext.validate``.
COMMAND = _cli.Command("nnunet-ext validate", DESCRIPTION, add_arguments, run, _PARAMETER_FLAGS)
main = COMMAND.main
