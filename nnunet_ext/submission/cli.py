"""Command line: ``python -m nnunet_ext.submission build|check`` / ``nnunet-ext submission``.

::

    nnunet-ext submission build -i PRED -o submission.zip --images imagesTs --labels 0 1 2 3
    nnunet-ext submission check -i submission.zip --images imagesTs --labels 0 1 2 3
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from nnunet_ext import _cli
from nnunet_ext.io import InputError, load_dataset_json
from nnunet_ext.io.outputs import Output
from nnunet_ext.qc.report import load_qc_csv
from nnunet_ext.submission.builder import build_submission
from nnunet_ext.submission.checker import check_submission
from nnunet_ext.submission.manifest import report_text
from nnunet_ext.submission.quality import qc_warnings

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

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
    _cli.add_labels(
        parser,
        "allowed labels, values or names from dataset.json (0 always allowed); "
        "build default: the prediction folder's dataset.json",
    )
    _cli.add_dataset_json(
        parser, "dataset.json that names the --labels (build default: the prediction folder's)"
    )
    parser.add_argument(
        "--name-template",
        default="{case}",
        metavar="TEMPLATE",
        help="file name (without ending) from the case ID, e.g. '{case}_seg'",
    )
    _cli.add_file_ending(parser, "label file ending", default=".nii.gz")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``build`` and ``check`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="{build,check}")
    build = _cli.add_subcommand(sub, "build", "build a submission zip from a prediction folder")
    _cli.add_input(
        build, "folder with CASE<ending> label files", metavar="PRED_DIR", old_positional=True
    )
    _cli.add_output(build, "the zip to write", metavar="OUT.zip")
    _common(build)
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
        metavar="PNG",
        help="also write a contact sheet of mid-slices with label overlays",
    )
    _cli.add_overwrite(build, "replace an existing zip")
    check = _cli.add_subcommand(sub, "check", "check any submission zip")
    _cli.add_input(check, "the submission zip", metavar="ZIP", old_positional=True)
    _common(check)
    check.add_argument(
        "--qc",
        type=Path,
        metavar="QC.csv",
        help="qc.csv of ensemble/predict --qc: list the submitted cases it flags (warnings)",
    )
    check.add_argument(
        "--strict-qc",
        action="store_true",
        help="with --qc: a flagged case is an error, not a warning",
    )


# Like postprocess's _label_ids but not the same rule: 0 allowed, ids and names mixed, names
# from --dataset-json (or the input folder's for build).
def _label_values(args: argparse.Namespace) -> list[int] | None:
    """``--labels`` as values: numbers as given, names through dataset.json."""
    if args.labels is None:
        return None
    if all(token.strip().isdigit() for token in args.labels):
        return [int(token) for token in args.labels]
    path = args.dataset_json
    if path is None and args.action == "build":
        path = Path(args.input) / "dataset.json"
    if path is None or not Path(path).is_file():
        raise ValueError(
            f"--labels names labels ({' '.join(args.labels)}); give --dataset-json to name them "
            "from, or label values (e.g. --labels 0 1 2)."
        )
    spec = load_dataset_json(path)
    values = []
    for token in args.labels:
        value = int(token) if token.strip().isdigit() else spec.labels.get(token)
        if not isinstance(value, int):
            raise InputError(
                "--labels",
                f"a label value or a label name of {path} ({', '.join(spec.labels)})",
                repr(token),
            )
        values.append(value)
    return values


def run(args: argparse.Namespace) -> int:
    """Run the command parsed from ``add_arguments``; returns the exit code."""
    if args.action == "build":
        stem = args.output.with_suffix("")
        outputs = [
            Output(args.output, "-o/--output", (".zip",)),
            Output(stem.with_name(stem.name + ".manifest.json"), "manifest", (".json",)),
            Output(stem.with_name(stem.name + ".report.txt"), "report", (".txt",)),
            None if args.preview is None else Output(args.preview, "--preview", (".png",)),
        ]
        with _cli.guard_command_outputs(
            args, outputs, inputs=[args.input, args.images], subcommand="build"
        ):
            report = build_submission(
                args.input,
                args.output,
                images_dir=args.images,
                label_ids=_label_values(args),
                label_map=dict(args.label_map),
                name_template=args.name_template,
                file_ending=args.file_ending,
                preview=args.preview,
                overwrite=args.overwrite,
            )
    else:
        if args.strict_qc and args.qc is None:
            raise ValueError("--strict-qc must come with --qc QC.csv; got no --qc.")
        if args.qc is not None:
            load_qc_csv(args.qc)  # a bad table fails before the zip is read
        report = check_submission(
            args.input,
            images_dir=args.images,
            label_ids=_label_values(args),
            name_template=args.name_template,
            file_ending=args.file_ending,
        )
        if args.qc is not None:
            cases = [c.case for c in report.cases]
            extra = qc_warnings(args.qc, cases, strict_qc=args.strict_qc)
            report = dataclasses.replace(report, warnings=(*report.warnings, *extra))
    print(report_text(report), end="")
    return 0


#: ``nnunet-ext submission`` and ``python -m nnunet_ext.submission``.
COMMAND = _cli.Command(
    "nnunet-ext submission",
    DESCRIPTION,
    add_arguments,
    run,
    parameter_flags={
        "output_zip": "-o/--output",
        "zip_path": "-i/--input",
        "images_dir": "--images",
        "label_ids": "--labels",
        "label_map": "--label-map",
        "name_template": "--name-template",
        "file_ending": "--file-ending",
        "qc_csv": "--qc",
        "strict_qc": "--strict-qc",
    },
)
main = COMMAND.main
