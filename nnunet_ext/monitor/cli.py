"""``nnunet-ext log -i FOLD_DIR [--json OUT.json] [--plot OUT.png] [--watch [SECONDS]]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnunet_ext import _cli
from nnunet_ext.io import write_json
from nnunet_ext.io.outputs import Output
from nnunet_ext.monitor.history import TrainingHistory, find_log_files, read_training_history
from nnunet_ext.monitor.report import format_report, plot_history
from nnunet_ext.monitor.watch import watch_training

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Read every training_log_*.txt of an nnU-Net fold folder (restarts with --c merged), print "
    "the last epochs with per-label pseudo Dice, EMA, best epoch, ETA and stop reason, and "
    "optionally write them as JSON and a PNG plot. --watch refreshes until training ends."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``log`` command's arguments."""
    _cli.add_fold_dirs(parser)
    _cli.add_json(parser, "write the epochs and summary as JSON")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="write a PNG of per-label pseudo Dice and losses",
    )
    parser.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=60.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default when given without a value: 60) until training ends",
    )
    parser.add_argument(
        "--last", type=int, default=15, metavar="N", help="epochs shown in the table (0: all)"
    )
    _cli.add_overwrite(parser, "replace existing --json/--plot files")


def run(args: argparse.Namespace) -> int:
    """Run ``nnunet-ext log``."""
    if args.last < 0:
        raise ValueError(f"--last must be >= 0; got {args.last}.")
    outputs = [
        None if args.json is None else Output(args.json, "--json", (".json",)),
        None if args.plot is None else Output(args.plot, "--plot", (".png",)),
    ]
    with _cli.guard_command_outputs(args, outputs, inputs=[args.input]):
        return _log(args)


def _log(args: argparse.Namespace) -> int:
    find_log_files(args.input)  # fail early, with the fold-folder hint
    clear = sys.stdout.isatty() and args.watch is not None

    def show(history: TrainingHistory) -> None:
        if clear:
            print("\033[2J\033[H", end="")
        print(format_report(history, last=args.last), flush=True)
        if args.json is not None:
            write_json(args.json, history.to_dict())
        if args.plot is not None and history.epochs:
            plot_history(history, args.plot)

    if args.watch is None:
        history = read_training_history(args.input)
        if args.plot is not None and not history.epochs:
            raise ValueError(
                f"{args.input}: no finished epoch to plot yet; try again later or use --watch."
            )
        show(history)
    else:
        watch_training(args.input, show, interval_s=args.watch)
    return 0


#: Library parameter names as this command's flags, for error messages.
_PARAMETER_FLAGS = {"fold_dir": "-i/--input", "path": "--plot", "interval_s": "--watch"}

#: ``nnunet-ext log`` and ``python -m nnunet_ext.monitor``.
COMMAND = _cli.Command("nnunet-ext log", DESCRIPTION, add_arguments, run, _PARAMETER_FLAGS)
main = COMMAND.main
