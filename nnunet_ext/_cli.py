"""Shared command-line plumbing: the exit-code contract, logging set-up, errors named as flags.

Every command follows one contract: 0 on success, 1 for a domain error (one ``prog: error: ...``
line on stderr, no traceback unless ``-vv``), 2 for usage errors (argparse), 70 for an internal
error (a bug: one line naming a log file with the traceback). Results go to stdout, logs to stderr.

Every command builds its parser from the flag vocabulary (:data:`VOCABULARY`, ``add_input``,
``add_output``...), defined in :mod:`nnunet_ext._cli_vocabulary` and re-exported here, so that a
command's ``cli.py`` needs this one module: ``_cli.add_input(parser, ...)``, ``_cli.Command(...)``.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_ext import __version__
from nnunet_ext._cli_vocabulary import (
    DEFAULT_NUM_WORKERS,
    VOCABULARY,
    Flag,
    HelpFormatter,
    add_allow_missing,
    add_allow_unsafe_checkpoints,
    add_common_arguments,
    add_convention,
    add_dataset_json,
    add_deprecated_option,
    add_deprecated_positional,
    add_device,
    add_figure,
    add_file_ending,
    add_fold_dirs,
    add_folds,
    add_ignore_label,
    add_input,
    add_json,
    add_labels,
    add_metric,
    add_models,
    add_nsd_tolerance,
    add_num_workers,
    add_output,
    add_overwrite,
    add_plan,
    add_reference,
    add_save_probabilities,
    add_subcommand,
    add_verbose_to_subcommand,
    flag_name,
)
from nnunet_ext.io.outputs import Output, guard_outputs

# The vocabulary's names are listed too: commands use them as ``_cli.add_input`` (one module).
__all__ = [
    "COMMON_PARAMETER_FLAGS",
    "DEFAULT_NUM_WORKERS",
    "DOMAIN_ERRORS",
    "INTERNAL_ERROR_EXIT",
    "INTERNAL_ERROR_MARKER",
    "VOCABULARY",
    "Command",
    "Flag",
    "HelpFormatter",
    "add_allow_missing",
    "add_allow_unsafe_checkpoints",
    "add_common_arguments",
    "add_convention",
    "add_dataset_json",
    "add_deprecated_option",
    "add_deprecated_positional",
    "add_device",
    "add_figure",
    "add_file_ending",
    "add_fold_dirs",
    "add_folds",
    "add_ignore_label",
    "add_input",
    "add_json",
    "add_labels",
    "add_metric",
    "add_models",
    "add_nsd_tolerance",
    "add_num_workers",
    "add_output",
    "add_overwrite",
    "add_plan",
    "add_reference",
    "add_save_probabilities",
    "add_subcommand",
    "add_verbose_to_subcommand",
    "command_name",
    "configure_logging",
    "finish_args",
    "flag_message",
    "flag_name",
    "guard_command_outputs",
    "insert_default_subcommand",
    "library_arguments",
    "make_parser",
    "run_cli",
]

Run = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]


def finish_args(args: argparse.Namespace, required: Sequence[str] = ()) -> argparse.Namespace:
    """Move deprecated positionals to their options and check that ``required`` are given.

    Raises:
        SystemExit: With exit code 2 (a usage error) when a value is given twice or missing.
    """
    parser: argparse.ArgumentParser | None = getattr(args, "_parser", None)

    def usage_error(message: str) -> None:
        if parser is None:
            raise SystemExit(2)
        parser.error(message)

    for key in [k for k in vars(args) if k.startswith("_positional_")]:
        value = getattr(args, key)
        delattr(args, key)
        dest = key[len("_positional_") :]
        if value is None or value == []:
            continue
        flag = "/".join(VOCABULARY[dest].option_strings)
        if getattr(args, dest, None) is not None:
            usage_error(f"give {flag} once (a positional path is its deprecated spelling)")
        print(
            f"{getattr(parser, 'prog', 'nnunet-ext')}: warning: a positional path is "
            f"deprecated; use {flag}",
            file=sys.stderr,
        )
        setattr(args, dest, value)
    for dest in required:
        if getattr(args, dest, None) in (None, []):
            usage_error(f"the following arguments are required: {flag_name(dest)}")
    return args


#: Library parameters that every command spells the same way (the vocabulary's paths included).
COMMON_PARAMETER_FLAGS = {
    "input_dir": "-i/--input",
    "input_dirs": "-i/--input",
    "prediction_dir": "-i/--input",
    "output_dir": "-o/--output",
    "reference_dir": "-r/--reference",
    "overwrite": "--overwrite",
    "allow_missing": "--allow-missing",
    "num_workers": "-j/--num-workers",
    "dataset_json": "--dataset-json",
    "executor": "--executor",
    "ray_address": "--ray-address",
    "allow_unsafe_checkpoints": "--allow-unsafe-checkpoints",
}


def flag_message(message: str, flags: Mapping[str, str]) -> str:
    """Replace library parameter names in an error ``message`` by the command's flags.

    ``name=True`` becomes the flag. A name with an underscore is replaced wherever it stands
    alone (not inside a path or a longer name); a plain word (``metrics``) only at the start of
    the message, after ``"; "``, ``"("`` or ``" and "``, so paths and values are never touched.

    Examples:
        >>> flag_message("input_dirs must list 2 folders; got 1.", {"input_dirs": "-i/--input"})
        '-i/--input must list 2 folders; got 1.'
        >>> flag_message("metrics: unknown 'x'. Pass overwrite=True.", {"metrics": "--metrics"})
        "--metrics: unknown 'x'. Pass --overwrite."
        >>> flag_message("/data/metrics/x: bad", {"metrics": "--metrics"})
        '/data/metrics/x: bad'
        >>> flag_message("weights[0] must be >= 0; got -1.", {"weights": "--weights"})
        '--weights[0] must be >= 0; got -1.'
    """
    for param, flag in {**COMMON_PARAMETER_FLAGS, **flags}.items():
        name = re.escape(param)
        end = r"(?![\w/-]|\.\w)"
        message = re.sub(rf"(?<![\w./-]){name}=True{end}", flag, message)
        if "_" in param:
            message = re.sub(rf"(?<![\w./-]){name}{end}", flag, message)
        else:
            start = r"(^|; |\(| and )"
            message = re.sub(rf"{start}{name}(?=[\s:=,)\[])", rf"\g<1>{flag}", message)
    return message


def insert_default_subcommand(
    argv: Sequence[str], subcommands: Sequence[str], default: str
) -> list[str]:
    """Insert ``default`` when ``argv`` (after the command) names no subcommand.

    Examples:
        >>> insert_default_subcommand(["-i", "a", "-o", "b"], ["apply", "determine"], "apply")
        ['apply', '-i', 'a', '-o', 'b']
        >>> insert_default_subcommand(["-v", "determine", "-i", "a"], ["apply", "determine"], "x")
        ['-v', 'determine', '-i', 'a']
        >>> insert_default_subcommand(["--help"], ["apply"], "apply")
        ['--help']
    """
    argv = list(argv)
    start = 0
    while start < len(argv) and re.fullmatch(r"-v+|-q+|--verbose|--quiet", argv[start]):
        start += 1
    rest = argv[start:]
    if not rest or rest[0] in (*subcommands, "-h", "--help"):
        return argv
    return [*argv[:start], default, *rest]


def command_name(args: argparse.Namespace, default: str = "nnunet-ext") -> str:
    """The command's name for messages and lock records (``nnunet-ext ensemble``).

    Both the umbrella parser and :func:`make_parser` record it as ``args._prog``.
    """
    return str(getattr(args, "_prog", default))


def library_arguments(args: argparse.Namespace, names: str) -> dict[str, Any]:
    """The parsed flags ``names`` (separated by spaces) as keyword arguments of a library call.

    A flag's ``dest`` is the library parameter it sets (``--step-size`` -> ``step_size``);
    flags whose value needs converting are passed explicitly beside these.

    Examples:
        >>> args = argparse.Namespace(step_size=0.5, overwrite=True, quiet=0)
        >>> library_arguments(args, "step_size overwrite")
        {'step_size': 0.5, 'overwrite': True}
    """
    return {name: getattr(args, name) for name in names.split()}


def guard_command_outputs(
    args: argparse.Namespace,
    outputs: Sequence[Output | None],
    inputs: Iterable[str | os.PathLike[str] | None],
    *,
    subcommand: str = "",
) -> AbstractContextManager[None]:
    """:func:`nnunet_ext.io.outputs.guard_outputs` for the command that parsed ``args``.

    ``--overwrite`` and the command's name (plus ``subcommand``) come from ``args``.
    """
    command = " ".join(filter(None, (command_name(args), subcommand)))
    return guard_outputs(
        outputs, inputs=inputs, overwrite=getattr(args, "overwrite", False), command=command
    )


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to ``sys.stderr`` as it is when a record is emitted.

    ``main`` may run many times in one process (notebooks, tests, scripts that redirect
    ``sys.stderr``); a handler holding the stream of its first call would write to a stream
    that was replaced or closed since (as :data:`logging.lastResort` avoids the same way).
    """

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def configure_logging(verbosity: int) -> None:
    """Send the ``nnunet_ext`` logger to stderr: errors (-q), warnings, -v info, -vv debug."""
    levels = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}
    level = levels.get(verbosity, logging.ERROR if verbosity < 0 else logging.DEBUG)
    logger = logging.getLogger("nnunet_ext")
    logger.setLevel(level)
    if not any(getattr(h, "_nnunet_ext_cli", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler._nnunet_ext_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def make_parser(
    prog: str, description: str, add_arguments: AddArguments
) -> argparse.ArgumentParser:
    """Build a parser with the command's own arguments plus the common ones."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter
    )
    parser.set_defaults(_parser=parser, _prog=prog)
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
    finish_args(args, getattr(args, "_required", ()))
    configure_logging(getattr(args, "verbose", 0) - getattr(args, "quiet", 0))
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except DOMAIN_ERRORS as err:
        if getattr(args, "verbose", 0) >= 2:
            raise
        message = flag_message(str(err), getattr(args, "_flags", {}))
        print(f"{prog}: error: {message}", file=sys.stderr)
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


@dataclass(frozen=True)
class Command:
    """One command: what both ``nnunet-ext NAME`` and ``python -m nnunet_ext.<module>`` run.

    Attributes:
        prog: What the user types (``nnunet-ext ensemble``); names the command in messages.
        description: The help page's description.
        add_arguments: Adds the command's own flags to a parser (the common ones come on top).
        run: Runs the parsed arguments; returns the exit code.
        parameter_flags: Library parameter names in error messages -> this command's flags
            (added to :data:`COMMON_PARAMETER_FLAGS`; see :func:`flag_message`).
        default_subcommand: ``(subcommands, default)``: the subcommand meant when none is named.
    """

    prog: str
    description: str
    add_arguments: AddArguments
    run: Run
    parameter_flags: Mapping[str, str] = field(default_factory=dict)
    default_subcommand: tuple[tuple[str, ...], str] | None = None

    def with_default_subcommand(self, argv: Sequence[str]) -> list[str]:
        """``argv`` (after the command) with the default subcommand inserted if none is named."""
        if self.default_subcommand is None:
            return list(argv)
        return insert_default_subcommand(argv, *self.default_subcommand)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Parse ``argv`` (default: ``sys.argv[1:]``) and run: ``python -m nnunet_ext.<module>``."""
        parser = make_parser(self.prog, self.description, self.add_arguments)
        parser.set_defaults(_flags=dict(self.parameter_flags))
        args = parser.parse_args(
            self.with_default_subcommand(sys.argv[1:] if argv is None else argv)
        )
        return run_cli(self.run, args, self.prog)
