"""The one CLI vocabulary: each idea has one flag in every command, built by the helpers here.

Every command builds its parser from these helpers (re-exported by :mod:`nnunet_ext._cli`, where
commands find them as ``_cli.add_input``...), so one idea has one flag everywhere
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

Flags outside the vocabulary that several commands share are defined once here too, and so are
the hidden old spellings that still work (:func:`add_deprecated_option`, ``old_positional``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnunet_ext import __version__

__all__ = [
    "DEFAULT_NUM_WORKERS",
    "VOCABULARY",
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
    "flag_name",
]

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


def add_figure(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--figure PATH``: a PNG figure of the command's result (``tune``, ``compare``)."""
    parser.add_argument("--figure", metavar="PATH", help=help)


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


class _Convention(argparse.Action):
    """``--convention``: ``brats`` still works, deprecated, with one warning naming the preset."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if values == "brats":
            print(
                f"{parser.prog}: warning: --convention brats is deprecated: it is the empty-case "
                "rule of the brats2023 preset's legacy (whole-region) Dice and HD95 (374 mm), "
                "not the 2026 leaderboard; use --preset brats2023, or --preset brats2026-<task> "
                "(evaluate) to score as BraTS does",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, values)


def add_convention(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--convention NAME``: the metric values of empty cases (default ``nan``).

    ``brats`` is a deprecated alias: it warns once, naming the preset it equals.
    """
    parser.add_argument(
        "--convention", default="nan", metavar="NAME", action=_Convention, help=help
    )


def add_metric(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--metric METRIC`` (default ``dice``; values checked by ``postprocess.Objective``)."""
    parser.add_argument(
        "--metric",
        default="dice",
        metavar="METRIC",
        help=f"{help} on dice, iou, hd, hd95, hd95_pooled, assd, nsd, score:SCORE.json "
        "(distances in mm, lower is better), a registered metric (lesion_dice, lesion_f1) or a "
        "preset name (brats2026-glioma, kits23, ...: its score metric per label)",
    )


def add_nsd_tolerance(parser: argparse.ArgumentParser) -> None:
    """Add ``--nsd-tolerance MM`` (default 1.0): the NSD tolerance of ``--metric nsd``."""
    parser.add_argument(
        "--nsd-tolerance", type=float, default=1.0, metavar="MM", help="NSD tolerance in mm"
    )


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

    The value lands in ``_positional_<dest>``; :func:`~nnunet_ext._cli.finish_args` moves it to
    ``dest``.
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

    argparse cannot require "the option or the positional", so
    :func:`~nnunet_ext._cli.finish_args` checks it (``dest`` is added to the parser's ``_required``
    default).
    """
    add_deprecated_positional(parser, dest, multiple=multiple)
    parser.set_defaults(_required=(*(parser.get_default("_required") or ()), dest))


def flag_name(dest: str) -> str:
    """The user-facing spelling of a vocabulary ``dest`` (``input`` -> ``-i/--input``)."""
    flag = VOCABULARY.get(dest)
    return "/".join(flag.option_strings) if flag else "--" + dest.replace("_", "-")


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
