"""The umbrella command ``nnunet-ext <command> ...``.

Each command is the :class:`~nnunet_ext._cli.Command` ``COMMAND`` of ``nnunet_ext.<module>.cli``
(its ``add_arguments(parser)`` and ``run(args) -> int``), which also runs as
``python -m nnunet_ext.<module>``. Building this parser imports only those small ``cli`` modules,
never torch or nnunetv2, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nnunet_ext._cli import Command, HelpFormatter, add_common_arguments, run_cli

__all__ = ["COMMANDS", "main"]

#: command -> (module holding add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("nnunet_ext.demo.cli", "run nnunet_ext end to end on a synthetic dataset"),
    "ensemble": (
        "nnunet_ext.ensemble.cli",
        "fuse probability folders with per-model/per-label weights",
    ),
    "predict": (
        "nnunet_ext.predict.cli",
        "predict with a weighted multi-model ensemble in one pass",
    ),
    "export": (
        "nnunet_ext.export.cli",
        "bundle trained models, spec and plan for stock nnU-Net; check a bundle",
    ),
    "tune": ("nnunet_ext.tune.cli", "tune per-label ensemble weights on cross-validation"),
    "postprocess": (
        "nnunet_ext.postprocess.cli",
        "clean label maps: largest component, small objects, holes",
    ),
    "evaluate": (
        "nnunet_ext.evaluate.cli",
        "Dice, IoU, HD95, ASSD, NSD and volumes per case and label; explicit conventions",
    ),
    "compare": (
        "nnunet_ext.compare.cli",
        "is version B better than A? paired bootstrap intervals over evaluate's JSON",
    ),
    "submission": ("nnunet_ext.submission.cli", "build or check a challenge submission zip"),
    "log": ("nnunet_ext.monitor.cli", "read, plot and watch nnU-Net training logs"),
    "doctor": ("nnunet_ext.doctor.cli", "check the nnU-Net environment, trainers and data"),
    "validate": (
        "nnunet_ext.validate.cli",
        "validate any checkpoint into validation_<ckpt>/ without touching validation/",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the umbrella parser with one subparser per available command."""
    parser = argparse.ArgumentParser(
        prog="nnunet-ext",
        description="nnU-Net v2 extensions: training control, ensembling, postprocessing, "
        "evaluation, submissions.",
    )
    add_common_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is not None and module_name.startswith(err.name):
                continue  # command not built into this version
            raise
        command: Command = module.COMMAND
        sub = commands.add_parser(
            name, help=help_text, description=command.description, formatter_class=HelpFormatter
        )
        sub.set_defaults(
            _run=command.run,
            _prog=command.prog,
            _parser=sub,
            _flags=dict(command.parameter_flags),
        )
        command.add_arguments(sub)
        add_common_arguments(sub, nested=True)
    return parser


def _with_default_subcommand(argv: Sequence[str]) -> list[str]:
    """``nnunet-ext postprocess -i ...`` means ``nnunet-ext postprocess apply -i ...``."""
    argv = list(argv)
    position = next((k for k, token in enumerate(argv) if not token.startswith("-")), None)
    if position is None or argv[position] not in COMMANDS:
        return argv
    command: Command = importlib.import_module(COMMANDS[argv[position]][0]).COMMAND
    head, rest = argv[: position + 1], argv[position + 1 :]
    return head + command.with_default_subcommand(rest)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nnunet-ext``."""
    args = build_parser().parse_args(
        _with_default_subcommand(sys.argv[1:] if argv is None else argv)
    )
    return run_cli(args._run, args, args._prog)


if __name__ == "__main__":
    raise SystemExit(main())
