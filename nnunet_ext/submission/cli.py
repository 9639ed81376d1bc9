"""Command line: ``python -m nnunet_ext.submission build|check`` / ``nnunet-ext submission``.

::

    python -m nnunet_ext.submission build PRED -o submission.zip --images imagesTs --labels 0 1 2 3
    python -m nnunet_ext.submission check submission.zip --images imagesTs --labels 0 1 2 3
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from nnunet_ext._cli import add_verbose_to_subcommand, command_name, main_for
from nnunet_ext.io.outputs import Output, guard_outputs

__all__ = ["DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Build a flat, deterministic challenge submission zip from a prediction folder (only label "
    "files, every test case once, uint8, allowed labels, test-image geometry), or check any zip "
    "the same way. On any problem: each listed by case, exit 1, no zip left behind."
)


def _pair(text: str) -> tuple[int, int]:
    old, sep, new = text.partition(":")
    if not sep or not old.strip().isdigit() or not new.strip().isdigit():
        raise argparse.ArgumentTypeError(
            f"--label-map entries must be OLD:NEW integers; got {text!r}"
        )
    return int(old), int(new)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images",
        type=Path,
        required=True,
        metavar="IMAGES_DIR",
        help="test images CASE_0000<ending>: define the expected cases and geometry",
    )
    parser.add_argument(
        "--labels",
        type=int,
        nargs="+",
        default=None,
        metavar="L",
        help="allowed label values (0 always allowed); build default: dataset.json",
    )
    parser.add_argument(
        "--name-template",
        default="{case}",
        help="file name (without ending) from the case ID, e.g. '{case}_seg'",
    )
    parser.add_argument("--file-ending", default=".nii.gz", help="label file ending")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``build`` and ``check`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="{build,check}")
    build = sub.add_parser(
        "build",
        help="build a submission zip from a prediction folder",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    build.add_argument("prediction_dir", type=Path, help="folder with CASE<ending> label files")
    build.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT.zip", help="the zip to write"
    )
    _common(build)
    add_verbose_to_subcommand(build)
    build.add_argument(
        "--label-map",
        type=_pair,
        nargs="+",
        default=[],
        metavar="OLD:NEW",
        help="remap label values for the challenge, e.g. 1:2 2:1",
    )
    build.add_argument(
        "--preview",
        type=Path,
        default=None,
        metavar="PNG",
        help="also write a contact sheet of mid-slices with label overlays",
    )
    build.add_argument("--overwrite", action="store_true", help="replace an existing zip")
    check = sub.add_parser(
        "check",
        help="check any submission zip",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    check.add_argument("zip", type=Path, help="the submission zip")
    _common(check)
    add_verbose_to_subcommand(check)


def run(args: argparse.Namespace) -> int:
    """Run the command parsed from ``add_arguments``; returns the exit code."""
    from nnunet_ext.submission.builder import build_submission
    from nnunet_ext.submission.checker import check_submission
    from nnunet_ext.submission.manifest import report_text

    if args.action == "build":
        stem = args.output.with_suffix("")
        outputs = [
            Output(args.output, "-o/--output", (".zip",)),
            Output(stem.with_name(stem.name + ".manifest.json"), "manifest", (".json",)),
            Output(stem.with_name(stem.name + ".report.txt"), "report", (".txt",)),
            None if args.preview is None else Output(args.preview, "--preview", (".png",)),
        ]
        with guard_outputs(
            outputs,
            inputs=[args.prediction_dir, args.images],
            overwrite=args.overwrite,
            command=command_name(args, "nnunet-ext submission") + " build",
        ):
            report = build_submission(
                args.prediction_dir,
                args.output,
                images_dir=args.images,
                label_ids=args.labels,
                label_map=dict(args.label_map),
                name_template=args.name_template,
                file_ending=args.file_ending,
                preview=args.preview,
                overwrite=args.overwrite,
            )
    else:
        report = check_submission(
            args.zip,
            images_dir=args.images,
            label_ids=args.labels,
            name_template=args.name_template,
            file_ending=args.file_ending,
        )
    print(report_text(report), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m nnunet_ext.submission``."""
    return main_for("nnunet-ext-submission", DESCRIPTION, add_arguments, run, argv)
