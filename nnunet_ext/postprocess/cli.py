"""Command line: ``python -m nnunet_ext.postprocess`` / ``nnunet-ext postprocess``.

Apply steps to a folder (``apply`` is the default subcommand)::

    nnunet-ext postprocess apply -i PRED -o OUT --keep-largest 1 2 --fill-holes 1 2

or decide a plan on validation predictions and apply it later::

    nnunet-ext postprocess determine -i CV_PRED -r LABELS -o plan.json
    nnunet-ext postprocess apply -i PRED -o OUT --plan plan.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ext import _cli
from nnunet_ext._parallel import add_executor_arguments, executor_from_args
from nnunet_ext.io import load_dataset_json
from nnunet_ext.io.outputs import Output
from nnunet_ext.postprocess.component_search import RULES
from nnunet_ext.postprocess.determine import determine_plan
from nnunet_ext.postprocess.folders import postprocess_folder
from nnunet_ext.postprocess.plan import PostprocessingPlan, load_plan, save_plan
from nnunet_ext.postprocess.step_search import JUDGES
from nnunet_ext.postprocess.steps import UNITS

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

APPLY_DESCRIPTION = (
    "Clean nnU-Net label maps. Steps run in this order: a plan's component rules, keep the "
    "largest foreground component, "
    "keep the largest component per label, remove small components, fill holes (only background "
    "voxels change; a hole takes the label with the most distinct face-neighbour voxels of the "
    "hole, ties to the smaller value). Outputs are uint8 with the input geometry."
)

DESCRIPTION = (
    "Clean nnU-Net label maps: 'apply' runs steps or a plan on a folder (the default: "
    "'nnunet-ext postprocess -i PRED -o OUT ...' is 'postprocess apply'); 'determine' chooses a "
    "plan on validation predictions by per-label mean Dice (nnU-Net's rule), and with "
    "--component-rules the component rules (relabel small, volume gate, keep top k, minimum "
    "probability) and every other step on held-out cases (--judge)."
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


def _add_label_list(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    parser.add_argument(flag, type=_label, nargs="+", default=[], metavar="L", help=help)


def _add_min_size(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--min-size", type=_min_size, nargs="+", default=[], metavar="L:N", help=help
    )


def _add_connectivity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connectivity",
        type=int,
        metavar="K",
        help="component connectivity 1..ndim (scipy convention); default: full (ndim)",
    )


def _add_probabilities(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--probabilities", type=Path, dest="probabilities_dir", metavar="DIR", help=help
    )


def _add_apply_arguments(parser: argparse.ArgumentParser) -> None:
    _cli.add_input(parser, "folder of label files (not modified)")
    _cli.add_output(parser, "output folder (must differ from --input)")
    _add_label_list(
        parser, "--keep-largest", "labels whose largest component alone is kept (ties: all kept)"
    )
    parser.add_argument(
        "--keep-largest-foreground",
        action="store_true",
        help="keep only the largest component of all foreground labels together",
    )
    _add_min_size(
        parser,
        "remove components of label L with fewer than N voxels (or a volume under N mm3, "
        "as L:Nmm3); a component of exactly N is kept",
    )
    _add_label_list(
        parser, "--fill-holes", "labels whose holes (background not reaching the border) are filled"
    )
    _add_connectivity(parser)
    _cli.add_plan(parser, "a plan JSON (from 'determine'); cannot be combined with step flags")
    _add_probabilities(
        parser,
        "folder of the fused probabilities (CASE.npz) of --input, for the plan's "
        "min_probability steps",
    )
    _cli.add_file_ending(parser, "label file ending; default from dataset.json, else .nii.gz")
    _cli.add_num_workers(parser, "worker processes")
    _cli.add_overwrite(parser, "redo cases already in --output")
    add_executor_arguments(parser)


def _add_determine_arguments(parser: argparse.ArgumentParser) -> None:
    _cli.add_input(parser, "folder of validation predictions")
    _cli.add_reference(parser, "folder of reference label files with the same case IDs")
    _cli.add_output(parser, "where to write the plan", metavar="PLAN.json")
    _cli.add_labels(
        parser, "labels to consider, ids or names; default: dataset.json foreground labels"
    )
    _add_min_size(parser, "candidate minimum sizes (voxels) to try")
    parser.add_argument(
        "--no-keep-largest-foreground",
        action="store_true",
        help="do not try the foreground largest-component step",
    )
    parser.add_argument(
        "--no-keep-largest", action="store_true", help="do not try per-label largest component"
    )
    parser.add_argument("--no-fill-holes", action="store_true", help="do not try hole filling")
    _add_connectivity(parser)
    parser.add_argument(
        "--component-rules",
        nargs="+",
        default=[],
        choices=[*RULES, "all"],
        metavar="RULE",
        help="component rules to try first, per label, judged on held-out cases: "
        f"{', '.join(RULES)} or all (min_probability needs --probabilities)",
    )
    _add_probabilities(
        parser, "folder of the fused probabilities (CASE.npz) of --input (for min_probability)"
    )
    parser.add_argument(
        "--judge",
        choices=JUDGES,
        default=None,
        metavar="JUDGE",
        help="how keep-largest, remove-small and fill-holes are judged: in-sample (nnU-Net's "
        "rule: the label's mean improves on the CV cases) or held-out (also the component "
        "rules' 5-fold held-out rule); default: held-out with --component-rules, else in-sample",
    )
    parser.add_argument(
        "--size-unit",
        choices=UNITS,
        default="voxels",
        metavar="UNIT",
        help="unit of the size thresholds the component rules choose: voxels or mm3",
    )
    _cli.add_ignore_label(parser, "reference value left out of Dice counts")
    _cli.add_num_workers(parser, "worker processes for reading")
    _cli.add_metric(
        parser,
        "decide each step (other than dice and the registered metrics, every step's effect on "
        "Dice, HD95, ASSD and NSD is reported)",
    )
    _cli.add_nsd_tolerance(parser)
    _cli.add_convention(
        parser, "empty-case convention of the metrics (nan, brats, max-distance; see evaluate)"
    )
    _cli.add_overwrite(parser, "replace an existing plan file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``apply`` and ``determine`` subcommands (``apply`` when none is named)."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="{apply,determine}")
    apply = _cli.add_subcommand(
        sub,
        "apply",
        "apply steps or a plan to a folder of label files (the default subcommand)",
        APPLY_DESCRIPTION,
    )
    _add_apply_arguments(apply)
    determine = _cli.add_subcommand(
        sub,
        "determine",
        "choose a plan on validation predictions vs references",
        "Try each step per label on validation predictions; keep it only if that label's mean "
        "Dice improves (nnU-Net's rule), or the mean of --metric (HD95, NSD, ASSD, a score "
        "file). Writes a plan JSON with the metrics.",
    )
    _add_determine_arguments(determine)


# Like submission's _label_values but not the same rule: foreground values only (> 0), names
# (regions too) resolved through the input folder's dataset.json.
def _label_ids(args: argparse.Namespace) -> list[int] | None:
    """``--labels`` as label values: numbers as they are, names through the input's dataset.json."""
    if args.labels is None:
        return None
    if all(token.strip().isdigit() for token in args.labels):
        values = [int(token) for token in args.labels]
        if 0 in values:
            raise ValueError(f"label_ids must be foreground labels (> 0); got {values}.")
        return values
    dataset_json = Path(args.input) / "dataset.json"
    if not dataset_json.is_file():
        raise ValueError(
            f"--labels names labels ({' '.join(args.labels)}) but {dataset_json} does not exist; "
            "give label values instead (e.g. --labels 1 2)."
        )
    resolved = load_dataset_json(dataset_json).resolve_all(args.labels)
    return [int(v) for v in resolved if isinstance(v, int)]


def _run_determine(args: argparse.Namespace) -> int:
    if any(unit != "voxels" for _, _, unit in args.min_size):
        raise ValueError("--min-size for determine must be in voxels (LABEL:N); got a mm3 size.")
    with _cli.guard_command_outputs(
        args,
        [Output(args.output, "-o/--output", (".json",))],
        inputs=[args.input, args.reference, args.probabilities_dir],
        subcommand="determine",
    ):
        return _determine(args)


def _determine(args: argparse.Namespace) -> int:
    plan = determine_plan(
        args.input,
        args.reference,
        label_ids=_label_ids(args),
        try_keep_largest_foreground=not args.no_keep_largest_foreground,
        try_keep_largest=not args.no_keep_largest,
        try_fill_holes=not args.no_fill_holes,
        min_voxels={label: size for label, size, _ in args.min_size},
        connectivity=args.connectivity,
        ignore_label=args.ignore_label,
        num_workers=args.num_workers,
        metric=args.metric,
        nsd_tolerance=args.nsd_tolerance,
        convention=args.convention,
        component_rules=RULES if "all" in args.component_rules else tuple(args.component_rules),
        probabilities_dir=args.probabilities_dir,
        size_unit=args.size_unit,
        judge=args.judge,
    )
    save_plan(plan, args.output)
    for entry in plan.metrics.get("candidates", []):
        rule = entry["step"] + (f" ({entry['statistic']})" if "statistic" in entry else "")
        verdict = "kept" if entry["accepted"] else "not kept"
        chosen = "" if entry["chosen"] is None else f" at {entry['chosen'][0]:.4g}"
        print(
            f"{rule:<24} label {entry['label']:<6} {len(entry['thresholds'])} candidate(s), "
            f"held-out gain {entry['held_out_gain']:+.4f} (noise {entry['noise']:.4f}){chosen}  "
            f"{verdict} on {entry['metric']}"
        )
    names = {"dice": "Dice", "iou": "IoU", "hd95": "HD95", "assd": "ASSD", "nsd": "NSD"}
    for step in plan.metrics["steps"]:
        label = "foreground" if step["label"] is None else f"label {step['label']}"
        verdict = "accepted" if step["accepted"] else "rejected"
        changes = "  ".join(
            f"{names.get(k, k)} {step['before'][k]:.4f} -> {step['after'][k]:.4f}"
            for k in step["before"]
        )
        held = "" if "held_out_gain" not in step else f"  held-out {step['held_out_gain']:+.4f}"
        print(f"{step['operation']:<24} {label:<12} {changes}{held}  {verdict} on {step['metric']}")
    print(args.output)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the command parsed from ``add_arguments``; returns the exit code."""
    if args.action == "determine":
        return _run_determine(args)
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
    with _cli.guard_command_outputs(
        args,
        [Output(args.output, "-o/--output", folder=True, cases=True)],
        inputs=[args.input, args.plan, args.probabilities_dir],
    ):
        result = postprocess_folder(
            args.input,
            args.output,
            plan=plan,
            num_workers=args.num_workers,
            overwrite=args.overwrite,
            file_ending=args.file_ending,
            executor=executor_from_args(args),
            probabilities_dir=args.probabilities_dir,
        )
    print(
        f"wrote {len(result.written)} case(s), skipped {len(result.skipped)} to {result.output_dir}"
    )
    return 0


#: ``nnunet-ext postprocess`` and ``python -m nnunet_ext.postprocess``.
COMMAND = _cli.Command(
    "nnunet-ext postprocess",
    DESCRIPTION,
    add_arguments,
    run,
    parameter_flags={
        "label_ids": "--labels",
        "min_voxels": "--min-size",
        "connectivity": "--connectivity",
        "metric": "--metric",
        "num_workers": "-j/--num-workers",
        "component_rules": "--component-rules",
        "probabilities_dir": "--probabilities",
        "size_unit": "--size-unit",
        "judge": "--judge",
    },
    default_subcommand=(("apply", "determine"), "apply"),  # postprocess -i ... -o ... means apply
)
main = COMMAND.main
