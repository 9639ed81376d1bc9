"""``nnunet-ext compare`` / ``python -m nnunet_ext.compare``: is B better than A, how surely?"""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ext import _cli
from nnunet_ext.io.outputs import Output

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Compare evaluations of the same cases (the JSON files of 'nnunet-ext evaluate --json', "
    "evaluated with the same labels, metrics, conventions and score file): per label and "
    "metric, each version's mean, the difference of each later version from the first with a "
    "95 %% bootstrap interval over paired resamples of the cases, the share of cases each one "
    "wins, and a verdict (B better, no difference beyond noise, A better); the same for the "
    "score; with three or more versions each one's mean rank over the cases and the "
    "probability that it ranks first."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the compare arguments to ``parser``."""
    _cli.add_input(
        parser,
        "two or more evaluation files (evaluate --json); the first is version A",
        metavar="EVALUATION.json",
        multiple=True,
    )
    parser.add_argument(
        "--names",
        nargs="+",
        metavar="NAME",
        help="one name per input, shown in the tables (default: the file names)",
    )
    parser.add_argument(
        "--common-cases",
        action="store_true",
        help="compare the cases every input has and list the others, instead of refusing "
        "inputs of different cases",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=2000,
        metavar="N",
        help="bootstrap resamples of the cases",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the resampling")
    _cli.add_json(parser, "write the comparison here (strict JSON)")
    _cli.add_figure(parser, "PNG of each difference's interval against zero, per label")
    _cli.add_overwrite(parser, "replace existing output files")


def run(args: argparse.Namespace) -> int:
    """Compare as described by ``args``."""
    from nnunet_ext.compare.api import compare_evaluations
    from nnunet_ext.compare.report import format_comparison, write_comparison

    outputs = [
        None if args.json is None else Output(Path(args.json), "--json", (".json",)),
        None if args.figure is None else Output(Path(args.figure), "--figure", (".png",)),
    ]
    with _cli.guard_command_outputs(args, outputs, inputs=args.input):
        comparison = compare_evaluations(
            args.input, **_cli.library_arguments(args, "names common_cases samples seed")
        )
        print(format_comparison(comparison))
        written = write_comparison(comparison, json_path=args.json, figure_path=args.figure)
        if written:
            print(f"\nwrote {' and '.join(str(p) for p in written)}")
    return 0


#: ``nnunet-ext compare`` and ``python -m nnunet_ext.compare``.
COMMAND = _cli.Command(
    "nnunet-ext compare",
    DESCRIPTION,
    add_arguments,
    run,
    parameter_flags={
        "evaluations": "-i/--input",
        "names": "--names",
        "common_cases": "--common-cases",
        "samples": "--samples",
        "seed": "--seed",
    },
)
main = COMMAND.main
