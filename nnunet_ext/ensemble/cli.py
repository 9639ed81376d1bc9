"""``python -m nnunet_ext.ensemble`` / ``nnunet-ext ensemble``: fuse prediction folders."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nnunet_ext import _cli
from nnunet_ext._parallel import add_executor_arguments, executor_from_args
from nnunet_ext.ensemble.folders import ensemble_folders
from nnunet_ext.io.outputs import Output
from nnunet_ext.qc.options import QC_PARAMETER_FLAGS, add_qc_arguments, qc_options_from_args

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Fuse nnU-Net probability folders (CASE.npz + CASE.pkl from nnUNetv2_predict "
    "--save_probabilities or nnUNetv2_train --npz) with per-model and per-label weights, and write "
    "uint8 label files with nnU-Net's own writer. Equal weights give exactly nnUNetv2_ensemble's "
    "labels. Reruns skip complete cases."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ensemble options to ``parser``."""
    _cli.add_input(
        parser,
        "prediction folders to fuse (optional with --spec, which then supplies them)",
        multiple=True,
        required=False,
    )
    _cli.add_output(parser, "output folder")
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
    _cli.add_save_probabilities(parser)
    _cli.add_num_workers(parser, "cases fused in parallel")
    _cli.add_overwrite(parser, "redo cases whose outputs already exist")
    _cli.add_allow_missing(
        parser, "fuse each case from the folders that have it instead of failing"
    )
    _cli.add_plan(
        parser,
        "postprocessing plan (postprocess determine) applied to each case before its label "
        "write; labels equal 'postprocess apply' on the plain output",
    )
    parser.add_argument(
        "--no-isal",
        action="store_true",
        help="inflate with the standard zlib instead of ISA-L (same results, slower)",
    )
    add_executor_arguments(parser)
    add_qc_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the ensemble described by parsed ``args``; print a JSON summary on stdout."""
    if not args.input and args.spec is None:
        raise ValueError("-i/--input must list prediction folders (or give --spec); got none.")
    qc = qc_options_from_args(args)
    report = qc.report if qc is not None else None
    with _cli.guard_command_outputs(
        args,
        [
            Output(args.output, "-o/--output", folder=True, cases=True),
            Output(report, "--qc-report", (".html",)) if report is not None else None,
        ],
        inputs=[*(args.input or []), args.spec, args.plan],
    ):
        summary = ensemble_folders(
            args.input,
            args.output,
            **_cli.library_arguments(
                args, "weights spec save_probabilities num_workers overwrite allow_missing"
            ),
            use_isal=False if args.no_isal else None,
            executor=executor_from_args(args),
            postprocessing=args.plan,
            qc=qc,
        )
    print(json.dumps(summary.to_dict()))
    return 0


#: ``nnunet-ext ensemble`` and ``python -m nnunet_ext.ensemble``.
COMMAND = _cli.Command(
    "nnunet-ext ensemble",
    DESCRIPTION,
    add_arguments,
    run,
    parameter_flags={
        "weights": "--weights",
        "spec": "--spec",
        "postprocessing": "--plan",
        **QC_PARAMETER_FLAGS,
    },
)
main = COMMAND.main
