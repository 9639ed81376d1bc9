"""``python -m nnunet_ext.ensemble`` / ``nnunet-ext ensemble``: fuse prediction folders."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from nnunet_ext._cli import command_name, main_for
from nnunet_ext._parallel import add_executor_arguments, executor_from_args
from nnunet_ext.io.outputs import Output, guard_outputs

__all__ = ["DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Fuse nnU-Net probability folders (CASE.npz + CASE.pkl from nnUNetv2_predict "
    "--save_probabilities or nnUNetv2_train --npz) with per-model and per-label weights, and write "
    "uint8 label files with nnU-Net's own writer. Equal weights give exactly nnUNetv2_ensemble's "
    "labels. Reruns skip complete cases."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ensemble options to ``parser``."""
    parser.add_argument(
        "-i",
        "--input",
        dest="input_dirs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="prediction folders to fuse (optional with --spec, which then supplies them)",
    )
    parser.add_argument(
        "-o",
        "--output",
        dest="output_dir",
        type=Path,
        required=True,
        metavar="OUT",
        help="output folder",
    )
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--weights",
        nargs="+",
        type=float,
        metavar="W",
        help="one global weight per input folder (default: equal weights)",
    )
    weights.add_argument(
        "--spec",
        type=Path,
        metavar="SPEC.json",
        help="ensemble spec JSON with members, weights, per-label weights and rules ('from' a "
        "member, decision 'scale'); with -i its weights and rules apply to the given folders in "
        "the same order",
    )
    parser.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write the fused CASE.npz and CASE.pkl",
    )
    parser.add_argument(
        "-j", "--num-workers", type=int, default=1, metavar="N", help="cases fused in parallel"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="redo cases whose outputs already exist"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="fuse each case from the folders that have it instead of failing",
    )
    parser.add_argument(
        "--no-isal",
        action="store_true",
        help="inflate with the standard zlib instead of ISA-L (same results, slower)",
    )
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the ensemble described by parsed ``args``; print a JSON summary on stdout."""
    if not args.input_dirs and args.spec is None:
        raise ValueError("-i/--input must list prediction folders (or give --spec); got none.")
    if args.num_workers < 1:
        raise ValueError(f"-j/--num-workers must be >= 1; got {args.num_workers}.")
    from nnunet_ext.ensemble.folders import ensemble_folders

    with guard_outputs(
        [Output(args.output_dir, "-o/--output", folder=True, cases=True)],
        inputs=[*(args.input_dirs or []), args.spec],
        overwrite=args.overwrite,
        command=command_name(args, "nnunet-ext ensemble"),
    ):
        summary = ensemble_folders(
            args.input_dirs,
            args.output_dir,
            weights=args.weights,
            spec=args.spec,
            save_probabilities=args.save_probabilities,
            num_workers=args.num_workers,
            overwrite=args.overwrite,
            allow_missing=args.allow_missing,
            use_isal=False if args.no_isal else None,
            executor=executor_from_args(args),
        )
    print(json.dumps(summary.to_dict()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m nnunet_ext.ensemble``."""
    return main_for("nnunet-ext ensemble", DESCRIPTION, add_arguments, run, argv)
