"""Command line: ``python -m nnunet_ext.postprocess`` / ``nnunet-ext postprocess``.

Apply steps to a folder::

    python -m nnunet_ext.postprocess -i PRED -o OUT --keep-largest 1 2 --fill-holes 1 2

or decide a plan on validation predictions and apply it later::

    python -m nnunet_ext.postprocess determine -i CV_PRED -r LABELS -o plan.json
    python -m nnunet_ext.postprocess -i PRED -o OUT --plan plan.json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from nnunet_ext._cli import add_verbose_to_subcommand, command_name, main_for
from nnunet_ext._parallel import add_executor_arguments, executor_from_args
from nnunet_ext.io.outputs import Output, guard_outputs

__all__ = ["DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Clean nnU-Net label maps. Steps run in this order: keep the largest foreground component, "
    "keep the largest component per label, remove small components, fill holes (only background "
    "voxels change; a hole takes the label with most face-neighbour voxels, ties to the smaller "
    "value). Outputs are uint8 with the input geometry. Subcommand 'determine' chooses a plan on "
    "validation predictions by per-label mean Dice (nnU-Net's rule)."
)


def _label(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"a label must be an integer > 0; got {text!r}")
    return int(text)


def _min_size(text: str) -> tuple[int, float, str]:
    label, sep, size = text.partition(":")
    unit = "voxels"
    if size.lower().endswith("mm3"):
        unit, size = "mm3", size[:-3]
    try:
        value = float(size)
    except ValueError:
        value = -1.0
    if not sep or not label.strip().isdigit() or int(label) <= 0 or not value >= 0:
        raise argparse.ArgumentTypeError(
            "--min-size must be LABEL:VOXELS or LABEL:VOLUMEmm3 (e.g. 3:20 or 3:50mm3); "
            f"got {text!r}"
        )
    return int(label), value, unit


def _add_apply_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", type=Path, help="folder of label files (not modified)")
    parser.add_argument(
        "-o", "--output", type=Path, help="output folder (must differ from --input)"
    )
    parser.add_argument(
        "--keep-largest",
        type=_label,
        nargs="+",
        default=[],
        metavar="L",
        help="labels whose largest component alone is kept (ties: all tied kept)",
    )
    parser.add_argument(
        "--keep-largest-foreground",
        action="store_true",
        help="keep only the largest component of all foreground labels together",
    )
    parser.add_argument(
        "--min-size",
        type=_min_size,
        nargs="+",
        default=[],
        metavar="L:N",
        help="remove components of label L smaller than N voxels (or Nmm3)",
    )
    parser.add_argument(
        "--fill-holes",
        type=_label,
        nargs="+",
        default=[],
        metavar="L",
        help="labels whose holes (background not reaching the border) are filled",
    )
    parser.add_argument(
        "--connectivity",
        type=int,
        default=None,
        metavar="K",
        help="component connectivity 1..ndim (scipy convention); default: full",
    )
    parser.add_argument(
        "--plan",
        type=Path,
        default=None,
        metavar="PLAN.json",
        help="a plan JSON (from 'determine'); cannot be combined with step flags",
    )
    parser.add_argument(
        "--file-ending",
        default=None,
        help="label file ending; default from dataset.json, else .nii.gz",
    )
    parser.add_argument("-j", "--num-workers", type=int, default=1, help="worker processes")
    parser.add_argument("--overwrite", action="store_true", help="redo cases already in --output")
    add_executor_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the postprocess options and the ``determine`` subcommand to ``parser``."""
    _add_apply_arguments(parser)
    sub = parser.add_subparsers(dest="action", metavar="{determine}")
    determine = sub.add_parser(
        "determine",
        help="choose a plan on validation predictions vs references",
        description="Try each step per label on validation predictions; keep it only if that "
        "label's mean Dice improves (nnU-Net's rule), or the mean of --metric (HD95, NSD, ASSD, "
        "a score file). Writes a plan JSON with the metrics.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_verbose_to_subcommand(determine)
    determine.add_argument(
        "-i",
        "--input",
        dest="det_input",
        type=Path,
        required=True,
        help="folder of validation predictions",
    )
    determine.add_argument(
        "-r",
        "--reference",
        type=Path,
        required=True,
        help="folder of reference label files with the same case IDs",
    )
    determine.add_argument(
        "-o",
        "--output",
        dest="det_output",
        type=Path,
        required=True,
        metavar="PLAN.json",
        help="where to write the plan",
    )
    determine.add_argument(
        "--labels",
        type=_label,
        nargs="+",
        default=None,
        metavar="L",
        help="labels to consider; default: dataset.json foreground labels",
    )
    determine.add_argument(
        "--min-size",
        dest="det_min_size",
        type=_min_size,
        nargs="+",
        default=[],
        metavar="L:N",
        help="candidate minimum sizes (voxels) to try",
    )
    determine.add_argument(
        "--no-keep-largest-foreground",
        action="store_true",
        help="do not try the foreground largest-component step",
    )
    determine.add_argument(
        "--no-keep-largest", action="store_true", help="do not try per-label largest component"
    )
    determine.add_argument("--no-fill-holes", action="store_true", help="do not try hole filling")
    determine.add_argument(
        "--connectivity",
        dest="det_connectivity",
        type=int,
        default=None,
        metavar="K",
        help="component connectivity 1..ndim; default: full",
    )
    determine.add_argument(
        "--ignore-label", type=int, default=None, help="reference value left out of Dice counts"
    )
    determine.add_argument(
        "-j",
        "--num-workers",
        dest="det_workers",
        type=int,
        default=1,
        help="worker processes for reading",
    )
    determine.add_argument(
        "--metric",
        default="dice",
        metavar="METRIC",
        help="decide each step on dice, iou, hd, hd95, hd95_pooled, assd, nsd or "
        "score:SCORE.json (distances in mm, lower is better); other than dice, every step's "
        "effect on Dice, HD95, ASSD and NSD is reported",
    )
    determine.add_argument(
        "--nsd-tolerance",
        type=float,
        default=1.0,
        metavar="MM",
        help="NSD tolerance in mm",
    )
    determine.add_argument(
        "--convention",
        default="nan",
        metavar="NAME",
        help="empty-case convention of the metrics (nan, brats, max-distance; see evaluate)",
    )
    determine.add_argument(
        "--overwrite",
        dest="det_overwrite",
        action="store_true",
        help="replace an existing plan file",
    )


def _run_determine(args: argparse.Namespace) -> int:
    if any(unit != "voxels" for _, _, unit in args.det_min_size):
        raise ValueError("--min-size for determine must be in voxels (LABEL:N); got a mm3 size.")
    with guard_outputs(
        [Output(args.det_output, "-o/--output", (".json",))],
        inputs=[args.det_input, args.reference],
        overwrite=args.det_overwrite,
        command=command_name(args, "nnunet-ext postprocess") + " determine",
    ):
        return _determine(args)


def _determine(args: argparse.Namespace) -> int:
    from nnunet_ext.postprocess.plan import determine_plan, save_plan

    plan = determine_plan(
        args.det_input,
        args.reference,
        label_ids=args.labels,
        try_keep_largest_foreground=not args.no_keep_largest_foreground,
        try_keep_largest=not args.no_keep_largest,
        try_fill_holes=not args.no_fill_holes,
        min_voxels={label: size for label, size, _ in args.det_min_size},
        connectivity=args.det_connectivity,
        ignore_label=args.ignore_label,
        num_workers=args.det_workers,
        metric=args.metric,
        nsd_tolerance=args.nsd_tolerance,
        convention=args.convention,
    )
    save_plan(plan, args.det_output)
    names = {"dice": "Dice", "iou": "IoU", "hd95": "HD95", "assd": "ASSD", "nsd": "NSD"}
    for step in plan.metrics["steps"]:
        label = "foreground" if step["label"] is None else f"label {step['label']}"
        verdict = "accepted" if step["accepted"] else "rejected"
        changes = "  ".join(
            f"{names.get(k, k)} {step['before'][k]:.4f} -> {step['after'][k]:.4f}"
            for k in step["before"]
        )
        print(f"{step['operation']:<24} {label:<12} {changes}  {verdict} on {step['metric']}")
    print(args.det_output)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the command parsed from ``add_arguments``; returns the exit code."""
    if getattr(args, "action", None) == "determine":
        return _run_determine(args)
    from nnunet_ext.postprocess.folders import postprocess_folder
    from nnunet_ext.postprocess.plan import PostprocessingPlan, load_plan

    if args.input is None or args.output is None:
        raise ValueError(
            "-i/--input and -o/--output are required; e.g. -i PRED -o OUT --keep-largest 1."
        )
    has_steps = bool(
        args.keep_largest or args.keep_largest_foreground or args.min_size or args.fill_holes
    )
    if args.plan is not None:
        if has_steps or args.connectivity is not None:
            raise ValueError(
                "--plan cannot be combined with step flags or --connectivity; put them in the plan."
            )
        plan = load_plan(args.plan)
    else:
        if not has_steps:
            raise ValueError(
                "no step given; pass at least one of --keep-largest, --keep-largest-foreground, "
                "--min-size, --fill-holes, or --plan."
            )
        plan = PostprocessingPlan(
            keep_largest_foreground=args.keep_largest_foreground,
            keep_largest=tuple(args.keep_largest),
            min_voxels={label: size for label, size, unit in args.min_size if unit == "voxels"},
            min_volume_mm3={label: size for label, size, unit in args.min_size if unit == "mm3"},
            fill_holes=tuple(args.fill_holes),
            connectivity=args.connectivity,
        )
    with guard_outputs(
        [Output(args.output, "-o/--output", folder=True, cases=True)],
        inputs=[args.input, args.plan],
        overwrite=args.overwrite,
        command=command_name(args, "nnunet-ext postprocess"),
    ):
        result = postprocess_folder(
            args.input,
            args.output,
            plan=plan,
            num_workers=args.num_workers,
            overwrite=args.overwrite,
            file_ending=args.file_ending,
            executor=executor_from_args(args),
        )
    print(
        f"wrote {len(result.written)} case(s), skipped {len(result.skipped)} to {result.output_dir}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m nnunet_ext.postprocess``."""
    return main_for("nnunet-ext-postprocess", DESCRIPTION, add_arguments, run, argv)
