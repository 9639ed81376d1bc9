"""Shared command-line plumbing: the flag vocabulary, logging set-up and the exit-code contract.

Every command follows one contract: 0 on success, 1 for a domain error (one ``prog: error: ...``
line on stderr, no traceback unless ``-vv``), 2 for usage errors (argparse), 70 for an internal
error (a bug: one line naming a log file with the traceback). Results go to stdout, logs to stderr.

Every command builds its parser from the helpers here, so one idea has one flag everywhere
(:data:`VOCABULARY`; ``tests/test_cli_vocabulary.py`` walks every parser against it):

========================  =============================================================
``-i/--input``            what the command reads (one or more paths)
``-o/--output``           the command's main artefact (a folder, a zip, a spec, a plan)
``-r/--reference``        the reference label folder
``--labels``              label ids or names from dataset.json (regions ``1,2`` where scored)
``-j/--num-workers``      worker processes, default :data:`DEFAULT_NUM_WORKERS` everywhere
``--json``                a machine-readable report (strict JSON)
``--overwrite``           replace existing outputs
``-v/--verbose``          more log output on stderr (``-vv``: tracebacks)
``-q/--quiet``            errors only on stderr
========================  =============================================================
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnunet_ext import __version__

if TYPE_CHECKING:
    from nnunet_ext.io.outputs import Output

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
    "add_common_arguments",
    "add_deprecated_option",
    "add_deprecated_positional",
    "add_input",
    "add_json",
    "add_labels",
    "add_num_workers",
    "add_output",
    "add_overwrite",
    "add_reference",
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

#: ``-j/--num-workers`` default of every command: one process, predictable memory.
DEFAULT_NUM_WORKERS = 1


@dataclass(frozen=True)
class Flag:
    """One entry of the vocabulary: its spellings, where argparse stores it, what it means."""

    option_strings: tuple[str, ...]
    dest: str
    meaning: str


#: The one CLI vocabulary: an idea listed here has this spelling and ``dest`` in every command.
VOCABULARY: dict[str, Flag] = {
    flag.dest: flag
    for flag in (
        Flag(("-i", "--input"), "input", "what the command reads (one or more paths)"),
        Flag(("-o", "--output"), "output", "the main artefact: a folder, a zip, a spec, a plan"),
        Flag(("-r", "--reference"), "reference", "the reference label folder"),
        Flag(("--labels",), "labels", "label ids or names from dataset.json"),
        Flag(("-j", "--num-workers"), "num_workers", "worker processes"),
        Flag(("--json",), "json", "a machine-readable report (strict JSON)"),
        Flag(("--overwrite",), "overwrite", "replace existing outputs"),
        Flag(("-v", "--verbose"), "verbose", "more log output on stderr"),
        Flag(("-q", "--quiet"), "quiet", "errors only on stderr"),
    )
}

_VERBOSE_HELP = "more log output on stderr (-vv also shows tracebacks)"
_QUIET_HELP = "only errors on stderr (no warnings or progress)"


class HelpFormatter(argparse.HelpFormatter):
    """Show a default only where it tells something (never ``None``, ``False`` or empty)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is argparse.SUPPRESS
            or default is None
            or isinstance(default, bool)
            or default == []
            or action.required
            or isinstance(action, argparse._CountAction)
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return text
        return f"{text} (default: %(default)s)"


def add_input(
    parser: argparse.ArgumentParser,
    help: str,
    *,
    metavar: str = "DIR",
    multiple: bool = False,
    required: bool = True,
    old_positional: bool = False,
) -> None:
    """Add ``-i/--input``: one path, or one or more with ``multiple``.

    ``old_positional``: the input was once positional; that form still works (see
    :func:`_keep_old_positional`).
    """
    parser.add_argument(
        "-i",
        "--input",
        dest="input",
        type=Path,
        nargs="+" if multiple else None,
        required=required and not old_positional,
        metavar=metavar,
        help=help,
    )
    if old_positional:
        _keep_old_positional(parser, "input", multiple=multiple)


def add_output(
    parser: argparse.ArgumentParser,
    help: str,
    *,
    metavar: str = "OUT",
    required: bool = True,
    default: Path | None = None,
) -> None:
    """Add ``-o/--output``: the command's main artefact."""
    parser.add_argument(
        "-o",
        "--output",
        dest="output",
        type=Path,
        required=required,
        default=default,
        metavar=metavar,
        help=help,
    )


def add_reference(
    parser: argparse.ArgumentParser,
    help: str,
    *,
    required: bool = True,
    metavar: str = "REF_DIR",
    old_positional: bool = False,
) -> None:
    """Add ``-r/--reference``: the folder of reference label files.

    ``old_positional``: as in :func:`add_input`.
    """
    parser.add_argument(
        "-r",
        "--reference",
        dest="reference",
        type=Path,
        required=required and not old_positional,
        metavar=metavar,
        help=help,
    )
    if old_positional:
        _keep_old_positional(parser, "reference")


def add_labels(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--labels``: label ids or names (as dataset.json spells them), kept as text."""
    parser.add_argument("--labels", dest="labels", nargs="+", metavar="LABEL", help=help)


def _workers(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}")
    return int(text)


def add_num_workers(parser: argparse.ArgumentParser, help: str = "worker processes") -> None:
    """Add ``-j/--num-workers`` with the one default (:data:`DEFAULT_NUM_WORKERS`)."""
    parser.add_argument(
        "-j",
        "--num-workers",
        dest="num_workers",
        type=_workers,
        default=DEFAULT_NUM_WORKERS,
        metavar="N",
        help=help,
    )


def add_json(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--json PATH``: write a machine-readable (strict JSON) report."""
    parser.add_argument("--json", dest="json", type=Path, metavar="OUT.json", help=help)


def add_overwrite(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--overwrite``."""
    parser.add_argument("--overwrite", dest="overwrite", action="store_true", help=help)


# Flags outside the vocabulary that several commands share: defined once here.


def add_file_ending(parser: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    """Add ``--file-ending ENDING`` (the label file ending, e.g. ``.nii.gz``)."""
    parser.add_argument("--file-ending", default=default, metavar="ENDING", help=help)


def add_dataset_json(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--dataset-json PATH``: the ``dataset.json`` that defines the labels."""
    parser.add_argument("--dataset-json", type=Path, metavar="PATH", help=help)


def add_plan(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--plan PLAN.json``: a postprocessing plan (from ``postprocess determine``)."""
    parser.add_argument("--plan", type=Path, metavar="PLAN.json", help=help)


def add_ignore_label(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--ignore-label VALUE``: a reference value left out of the counts."""
    parser.add_argument("--ignore-label", type=int, metavar="VALUE", help=help)


def add_allow_missing(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--allow-missing``: go on with the cases present instead of failing."""
    parser.add_argument("--allow-missing", action="store_true", help=help)


def add_save_probabilities(parser: argparse.ArgumentParser) -> None:
    """Add ``--save-probabilities``: also write the fused ``CASE.npz`` and ``CASE.pkl``."""
    parser.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write the fused CASE.npz and CASE.pkl",
    )


def add_allow_unsafe_checkpoints(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-unsafe-checkpoints``: the one opt-out of the checkpoint check.

    Without it, a checkpoint whose pickle names anything but tensors, numbers, strings and
    containers (:data:`nnunet_ext.io.checkpoints.CHECKPOINT_GLOBALS`) is refused before torch
    reads it, and every checkpoint loads with ``torch.load(weights_only=True)``.
    """
    parser.add_argument(
        "--allow-unsafe-checkpoints",
        action="store_true",
        help="load checkpoints whose pickle names other objects too, with torch.load("
        "weights_only=False): this runs code from the file; only for files you made or trust",
    )


def add_device(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--device {cpu,cuda,mps}`` (default ``None``: the command picks)."""
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), help=help)


def add_convention(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--convention NAME``: the metric values of empty cases (default ``nan``)."""
    parser.add_argument("--convention", default="nan", metavar="NAME", help=help)


def add_fold_dirs(parser: argparse.ArgumentParser, *, multiple: bool = False) -> None:
    """Add ``-i/--input FOLD_DIR``: nnU-Net fold folder(s) (once positional, still accepted)."""
    add_input(
        parser,
        f"nnU-Net fold folder{'s' if multiple else ''}, e.g. "
        "$nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG/fold_0",
        metavar="FOLD_DIR",
        multiple=multiple,
        old_positional=True,
    )


def add_models(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """Add ``-m/--model MODEL_DIR ...`` (``dest`` ``model_dirs``): trained nnU-Net model folders.

    ``-m`` is the first of required alternatives; add the others (``--spec``, ``--bundle``,
    ``--check``) to the returned group.
    """
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "-m",
        "--model",
        dest="model_dirs",
        nargs="+",
        type=Path,
        metavar="MODEL_DIR",
        help="trained model folders ($nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG)",
    )
    return group


def add_folds(parser: argparse.ArgumentParser) -> None:
    """Add ``-f/--folds FOLD ...``: the folds of every model, nnU-Net's default when omitted."""
    parser.add_argument(
        "-f",
        "--folds",
        nargs="+",
        metavar="FOLD",
        help="folds of every model (default: all fold_k with the checkpoint, like nnU-Net)",
    )


class _Deprecated(argparse.Action):
    """A hidden old spelling: stores into the new ``dest`` and says so on stderr."""

    def __init__(self, *args: Any, replacement: str = "", **kwargs: Any) -> None:
        self.replacement = replacement
        super().__init__(*args, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is deprecated; use {self.replacement}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_deprecated_option(
    parser: argparse.ArgumentParser,
    old: str,
    dest: str,
    replacement: str,
    *,
    type: Callable[[str], Any] = Path,
) -> None:
    """Keep an old option spelling working, hidden from help, as an alias of ``replacement``."""
    parser.add_argument(
        old,
        dest=dest,
        type=type,
        action=_Deprecated,
        replacement=replacement,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def add_deprecated_positional(
    parser: argparse.ArgumentParser, dest: str, *, multiple: bool = False
) -> None:
    """Keep an old positional argument working, hidden, as an alias of the option ``dest``.

    The value lands in ``_positional_<dest>``; :func:`finish_args` moves it to ``dest``.
    """
    parser.add_argument(
        f"_positional_{dest}",
        nargs="*" if multiple else "?",
        type=Path,
        default=[] if multiple else None,
        help=argparse.SUPPRESS,
    )


def _keep_old_positional(
    parser: argparse.ArgumentParser, dest: str, *, multiple: bool = False
) -> None:
    """Accept ``dest`` also as the hidden positional it once was, and still require one of them.

    argparse cannot require "the option or the positional", so :func:`finish_args` checks it
    (``dest`` is added to the parser's ``_required`` default).
    """
    add_deprecated_positional(parser, dest, multiple=multiple)
    parser.set_defaults(_required=(*(parser.get_default("_required") or ()), dest))


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


def flag_name(dest: str) -> str:
    """The user-facing spelling of a vocabulary ``dest`` (``input`` -> ``-i/--input``)."""
    flag = VOCABULARY.get(dest)
    return "/".join(flag.option_strings) if flag else "--" + dest.replace("_", "-")


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


def add_common_arguments(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    """Add ``-v/--verbose``, ``-q/--quiet`` and ``--version``.

    ``nested`` (a subcommand's parser): the defaults are suppressed, so that ``-v``/``-q`` given
    before the subcommand (``nnunet-ext -q evaluate ...``) is not reset by the subcommand.
    """
    default: Any = argparse.SUPPRESS if nested else 0
    parser.add_argument("-v", "--verbose", action="count", default=default, help=_VERBOSE_HELP)
    parser.add_argument("-q", "--quiet", action="count", default=default, help=_QUIET_HELP)
    parser.add_argument("--version", action="version", version=f"nnunet_ext {__version__}")


def add_verbose_to_subcommand(parser: argparse.ArgumentParser) -> None:
    """Accept ``-v``/``-q`` after a nested subcommand too (``postprocess determine -v``).

    The defaults are suppressed so that a ``-v`` given before the subcommand is not reset.
    """
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help=_VERBOSE_HELP
    )
    parser.add_argument(
        "-q", "--quiet", action="count", default=argparse.SUPPRESS, help=_QUIET_HELP
    )


def add_subcommand(
    subparsers: Any, name: str, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """Add a nested subcommand (``postprocess determine``) with the common flags."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description or help, formatter_class=HelpFormatter
    )
    parser.set_defaults(_parser=parser)
    add_verbose_to_subcommand(parser)
    return parser


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
    from nnunet_ext.io.outputs import guard_outputs

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
