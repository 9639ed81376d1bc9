"""Shared command-line plumbing: common flags, logging set-up and the exit-code contract.

Every command follows one contract: 0 on success, 1 for a domain error (one ``prog: error: ...``
line on stderr, no traceback unless ``-vv``), 2 for usage errors (argparse), 70 for an internal
error (a bug: one line naming a log file with the traceback). Results go to stdout, logs to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from nnunet_ext import __version__

__all__ = [
    "DOMAIN_ERRORS",
    "INTERNAL_ERROR_EXIT",
    "INTERNAL_ERROR_MARKER",
    "add_common_arguments",
    "add_verbose_to_subcommand",
    "command_name",
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


def command_name(args: argparse.Namespace, default: str) -> str:
    """The command's name for messages and lock records (``nnunet-ext ensemble``)."""
    return str(getattr(args, "_prog", default))


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


#: Exit code when the last-resort handler catches an unexpected exception (sysexits EX_SOFTWARE).
INTERNAL_ERROR_EXIT = 70

#: Marker that starts the one line the last-resort handler prints (tests look for it).
INTERNAL_ERROR_MARKER = "internal error"

#: Exceptions that are domain errors (bad input, refused output): one line, exit 1. KeyError and
#: IndexError are not: their message is a bare key, so they reach the last-resort handler.
DOMAIN_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def _internal_error_log(prog: str, err: BaseException) -> Path | None:
    """Write the traceback of ``err`` to a log file and return its path (``None`` if impossible)."""
    import datetime
    import os
    import tempfile
    import traceback

    folder = Path(os.environ.get("NNUNET_EXT_LOG_DIR") or tempfile.gettempdir())
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"nnunet_ext-internal-error-{stamp}-{os.getpid()}.log"
    text = (
        f"{prog} (nnunet_ext {__version__}, Python {sys.version.split()[0]})\n"
        f"argv: {sys.argv!r}\n\n"
        + "".join(traceback.format_exception(type(err), err, err.__traceback__))
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError:
        return None
    return path


def run_cli(run: Run, args: argparse.Namespace, prog: str) -> int:
    """Run a command's ``run(args)`` under the exit-code contract.

    0: success; 1: a domain error (``ValueError``, ``OSError``: one ``prog: error: ...`` line);
    130: interrupted; :data:`INTERNAL_ERROR_EXIT` (70): anything else, a bug: one
    ``prog: internal error ...`` line naming a log file with the full traceback. ``-vv`` shows
    tracebacks instead.
    """
    configure_logging(getattr(args, "verbose", 0))
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except DOMAIN_ERRORS as err:
        if getattr(args, "verbose", 0) >= 2:
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # the last-resort handler: never a traceback on the terminal
        if getattr(args, "verbose", 0) >= 2:
            raise
        log = _internal_error_log(prog, err)
        where = f"traceback in {log}" if log is not None else "no log file could be written"
        summary = f"{type(err).__name__}: {err}".strip().splitlines()[0][:300]
        print(
            f"{prog}: {INTERNAL_ERROR_MARKER} ({summary}); this is a bug in nnunet_ext, "
            f"please report it with the log file ({where}).",
            file=sys.stderr,
        )
        return INTERNAL_ERROR_EXIT


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
