"""``python -m nnunet_ext.export`` / ``nnunet-ext export``: write or check a model bundle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nnunet_ext import _cli

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Export trained model folders, their ensemble spec and postprocessing plan as one zip that "
    "stock nnU-Net installs (nnUNetv2_install_pretrained_model_from_zip) and predicts with: "
    "checkpoints without optimizer state, trainer names rewritten to stock trainers, a manifest "
    "with every file's SHA-256. 'nnunet-ext predict --bundle' runs the whole recipe from it; "
    "--check verifies a bundle without running it."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the export options to ``parser``."""
    what = _cli.add_models(parser)
    what.add_argument(
        "--check",
        type=Path,
        metavar="BUNDLE.zip",
        help="verify a bundle (manifest, every file's size and SHA-256) without running it",
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="BUNDLE.zip", help="bundle to write (with -m)"
    )
    parser.add_argument(
        "--spec",
        type=Path,
        metavar="SPEC.json",
        help="ensemble spec whose weights and rules the bundle keeps; its members are matched "
        "to -m by position (default: equal weights)",
    )
    _cli.add_plan(parser, "postprocessing plan to include")
    _cli.add_folds(parser)
    parser.add_argument(
        "--checkpoint",
        dest="checkpoints",
        nargs="+",
        default=["checkpoint_final.pth"],
        metavar="NAME",
        help="checkpoint files exported per fold; the first is the one the bundle predicts with",
    )
    parser.add_argument(
        "--include-logs",
        action="store_true",
        help="also export training logs, progress.png, debug.json and run records",
    )
    parser.add_argument(
        "--include-validation",
        action="store_true",
        help="also export fold_k/validation (without .npz/.pkl, as nnU-Net's export)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the summary as JSON to PATH"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _cli.add_allow_unsafe_checkpoints(parser)


def _report_output(args: argparse.Namespace) -> list[Any]:
    from nnunet_ext.io.outputs import Output, check_outputs

    outputs = [] if args.json is None else [Output(args.json, "--json", (".json",))]
    inputs = [args.check, *(args.model_dirs or []), args.spec, args.plan]
    check_outputs(outputs, inputs=[p for p in inputs if p is not None], overwrite=args.overwrite)
    return outputs


def _write_report(outputs: list[Any], data: dict[str, Any], overwrite: bool) -> None:
    from nnunet_ext.io import write_json
    from nnunet_ext.io.outputs import guard_outputs

    with guard_outputs(outputs, inputs=[], overwrite=overwrite, command="nnunet-ext export"):
        for output in outputs:
            write_json(output.path, data)


def run(args: argparse.Namespace) -> int:
    """Export (``-m ... -o``) or check (``--check``); print a JSON summary on stdout."""
    reports = _report_output(args)
    if args.check is not None:
        from nnunet_ext.io.bundle import verify_bundle

        given = (("-o/--output", args.output), ("--spec", args.spec), ("--plan", args.plan))
        stray = [flag for flag, value in given if value is not None]
        if args.allow_unsafe_checkpoints:
            stray.append("--allow-unsafe-checkpoints (a bundle holds only weights)")
        if stray:
            raise ValueError(f"--check takes only the bundle; remove {', '.join(stray)}.")
        report = verify_bundle(args.check).to_dict()
    else:
        from nnunet_ext.export.api import export_bundle

        if args.output is None:
            raise ValueError("-o/--output BUNDLE.zip is required with -m/--model.")
        report = export_bundle(
            args.model_dirs,
            args.output,
            **_cli.library_arguments(
                args,
                "spec plan folds checkpoints include_logs include_validation overwrite "
                "allow_unsafe_checkpoints",
            ),
        ).to_dict()
    _write_report(reports, report, args.overwrite)
    print(json.dumps(report))
    return 0


#: ``nnunet-ext export`` and ``python -m nnunet_ext.export``.
COMMAND = _cli.Command(
    "nnunet-ext export",
    DESCRIPTION,
    add_arguments,
    run,
    parameter_flags={
        "model_dirs": "-m/--model",
        "output": "-o/--output",
        "checkpoints": "--checkpoint",
        "folds": "-f/--folds",
        "spec": "--spec",
    },
)
main = COMMAND.main
