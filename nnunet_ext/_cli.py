"""Shared command-line plumbing: common flags, logging set-up and the exit-code contract.

Every command follows one contract: 0 on success, 1 for a domain error (one ``prog: error: ...``
line on stderr, no traceback unless ``-vv``), 2 for usage errors (argparse). Results go to
stdout, logs to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from nnunet_ext import __version__

__all__ = [
    "add_common_arguments",
    "add_verbose_to_subcommand",
    "check_output_files",
    "configure_logging",
    "make_parser",
    "run_cli",
]

Run = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose`` and ``--version``."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output on stderr (-vv also shows tracebacks)",
    )
    parser.add_argument("--version", action="version", version=f"nnunet_ext {__version__}")


def add_verbose_to_subcommand(parser: argparse.ArgumentParser) -> None:
    """Accept ``-v`` after a nested subcommand too (``postprocess determine -v``).

    The default is suppressed so that a ``-v`` given before the subcommand is not reset.
    """
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="more log output on stderr (-vv also shows tracebacks)",
    )


def check_output_files(
    output: Path, *, overwrite: bool, also: Iterable[Path] = (), suffix: str = ".json"
) -> None:
    """Check an ``-o/--output`` file (and files written beside it) before any work starts.

    Raises:
        ValueError: If ``output`` does not end with ``suffix``.
        NotADirectoryError: If its folder does not exist.
        FileExistsError: If it or one of ``also`` exists and ``overwrite`` is false.
    """
    if output.suffix != suffix:
        raise ValueError(f"-o/--output must end with {suffix}; got {output}.")
    if not output.parent.is_dir():
        raise NotADirectoryError(
            f"-o/--output folder must exist; got {output.parent}. Create it first."
        )
    existing = [p for p in (output, *also) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"output {existing[0]} already exists; pass --overwrite to replace it "
            "or choose another -o."
        )


def configure_logging(verbosity: int) -> None:
    """Send the ``nnunet_ext`` logger to stderr: warnings, ``-v`` info, ``-vv`` debug."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logger = logging.getLogger("nnunet_ext")
    logger.setLevel(level)
    if not any(getattr(h, "_nnunet_ext_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler._nnunet_ext_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def make_parser(
    prog: str, description: str, add_arguments: AddArguments
) -> argparse.ArgumentParser:
    """Build a parser with the command's own arguments plus the common ones."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_arguments(parser)
    add_common_arguments(parser)
    return parser


def run_cli(run: Run, args: argparse.Namespace, prog: str) -> int:
    """Run a command's ``run(args)`` under the exit-code contract."""
    configure_logging(getattr(args, "verbose", 0))
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, LookupError) as err:
        if getattr(args, "verbose", 0) >= 2:
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1


def main_for(
    prog: str,
    description: str,
    add_arguments: AddArguments,
    run: Run,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` and run: the body of every ``cli.main``."""
    parser = make_parser(prog, description, add_arguments)
    args = parser.parse_args(argv)
    return run_cli(run, args, prog)
