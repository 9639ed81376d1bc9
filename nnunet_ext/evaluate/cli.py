"""``nnunet-ext evaluate`` / ``python -m nnunet_ext.evaluate``: metrics per case and label."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from nnunet_ext import _cli
from nnunet_ext._parallel import add_executor_arguments, executor_from_args
from nnunet_ext.evaluate import folders
from nnunet_ext.evaluate.report import format_table, write_evaluation
from nnunet_ext.io.outputs import Output

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "parse_nsd_tolerance", "run"]

DESCRIPTION = (
    "Evaluate predicted label maps against references: Dice, IoU, TP/FP/FN and voxel counts per "
    "case and label (or region), per-label means and how many cases had an empty reference or "
    "prediction. Default conventions equal nnU-Net's compute_metrics_on_folder (Dice NaN when "
    "both are empty, left out of the means); --empty switches them. Prints a table; --json "
    "writes a strict-JSON summary and a per-case CSV. --preset NAME scores as a challenge's "
    "official scorer does (BraTS 2026 lesion-wise, BraTS 2023, KiTS23, FLARE22, autoPET)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the evaluate arguments to ``parser``."""
    _cli.add_input(
        parser, "folder of predicted label files", metavar="PRED_DIR", old_positional=True
    )
    _cli.add_reference(parser, "folder of reference label files (same names)", old_positional=True)
    _cli.add_json(
        parser,
        "write the summary here (strict JSON) and the per-case CSV beside it (<stem>_per_case.csv)",
    )
    _cli.add_deprecated_option(parser, "-o", "json", "--json")
    parser.add_argument("--csv", metavar="PER_CASE.csv", help="per-case CSV path (needs --json)")
    _cli.add_labels(
        parser,
        "labels to score: values (1 2), regions (1,2) or names from dataset.json "
        "(default: dataset.json's foreground labels or regions)",
    )
    parser.add_argument(
        "--empty",
        choices=("nan", "one", "skip"),
        default="nan",
        help="both empty: nan = NaN, left out of the mean (nnU-Net); one = 1; "
        "skip = leave every case with an empty reference out of that label's mean",
    )
    _cli.add_allow_missing(
        parser, "evaluate the cases present in both folders instead of failing on a missing one"
    )
    _cli.add_dataset_json(
        parser, "dataset.json with labels, regions, ignore, file_ending (default: found nearby)"
    )
    _cli.add_ignore_label(parser, "reference value not counted (default: dataset.json's 'ignore')")
    _cli.add_file_ending(parser, "label file ending (default: dataset.json's, else .nii.gz)")
    _cli.add_num_workers(parser, "processes reading and counting cases")
    _cli.add_overwrite(parser, "replace existing output files")
    add_executor_arguments(parser)
    _add_metric_arguments(parser)


def _add_metric_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        default=["dice", "iou"],
        help="metrics: dice iou hd hd95 hd95_pooled assd nsd volume (distances in mm from each "
        "reference's spacing)",
    )
    parser.add_argument(
        "--nsd-tolerance",
        nargs="+",
        metavar="MM",
        default=["1.0"],
        help="NSD tolerance in mm: one value, or per label LABEL:MM (a bare MM is the default "
        "for labels not listed)",
    )
    parser.add_argument(
        "--nsd-definition",
        choices=("voxel", "surfel", "panoptica"),
        default="voxel",
        help="NSD: voxel = surface voxels pooled (MONAI); surfel = surface elements weighted by "
        "area on the corner grid (DeepMind's surface-distance: KiTS, FLARE); panoptica = mean of "
        "the two directed fractions (panoptica, BraTS 2026)",
    )
    _cli.add_convention(
        parser,
        "values of empty cases: nan (distances NaN, counted), brats (both empty: "
        "Dice 1, HD95 0; one empty: Dice 0, HD95 374), max-distance (one empty: the image "
        "diagonal in mm)",
    )
    parser.add_argument(
        "--score",
        metavar="SCORE.json|PRESET",
        help="score file combining per-label metrics into one number "
        "(docs: reference/formats/score.md), or a preset name: its score (as --preset)",
    )
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help="score as a challenge's leaderboard: brats2026-glioma, brats2026-metastases, "
        "brats2026-pediatric, brats2026-meningioma, brats2026-meningioma-rt, brats2026-goat, "
        "brats2023, kits23, flare22, autopet (regions, metrics, empty and missing cases fixed; "
        "docs: reference/presets/)",
    )


def parse_nsd_tolerance(values: Sequence[str]) -> float | dict[str, float]:
    """Parse ``--nsd-tolerance`` values: ``2`` or ``1:2 2:1.5`` (``LABEL:MM``).

    Examples:
        >>> parse_nsd_tolerance(["2"]), parse_nsd_tolerance(["1:2", "0.5"])
        (2.0, {'1': 2.0, '*': 0.5})
    """
    per_label: dict[str, float] = {}
    for text in values:
        label, sep, mm = text.rpartition(":")
        try:
            value = float(mm)
        except ValueError:
            value = -1.0
        if not value >= 0 or (sep and not label.strip()):
            raise ValueError(
                "--nsd-tolerance must be MM or LABEL:MM with MM >= 0 (e.g. 2 or 1:2); "
                f"got {text!r}."
            )
        per_label[label.strip() if sep else "*"] = value
    if list(per_label) == ["*"]:
        return per_label["*"]
    return per_label


#: Flags a preset fixes, with their defaults: giving one beside --preset is an error.
_PRESET_FIXES = {
    "labels": None,
    "metrics": ["dice", "iou"],
    "empty": "nan",
    "convention": "nan",
    "nsd_tolerance": ["1.0"],
    "nsd_definition": "voxel",
    "ignore_label": None,
}


def _preset_name(args: argparse.Namespace) -> str | None:
    """The preset of ``--preset`` or of ``--score PRESET``; refuses flags a preset fixes."""
    from nnunet_ext.evaluate.presets import PRESETS

    preset = args.preset
    if args.score is not None and args.score in PRESETS and not Path(args.score).exists():
        if preset is not None and preset != args.score:
            raise ValueError(
                f"--score {args.score} and --preset {preset} name two presets; give one."
            )
        preset, args.score = args.score, None
    if preset is None:
        return None
    if args.score is not None:
        raise ValueError("--preset fixes the score; drop --score SCORE.json or --preset.")
    for dest, default in _PRESET_FIXES.items():
        if getattr(args, dest) != default:
            flag = "--" + dest.replace("_", "-")
            raise ValueError(
                f"{flag} must not be given with --preset {preset}: the preset fixes it "
                f"(docs: reference/presets/{preset}.md); drop {flag}."
            )
    return str(preset)


def _run_preset(args: argparse.Namespace, preset: str, outputs: list[Output | None]) -> int:
    from nnunet_ext.evaluate import challenge_folder

    with _cli.guard_command_outputs(args, outputs, inputs=[args.input, args.reference]):
        evaluation = challenge_folder.evaluate_preset(
            args.input,
            args.reference,
            preset,
            file_ending=args.file_ending or ".nii.gz",
            num_workers=args.num_workers,
            executor=executor_from_args(args),
        )
        print(challenge_folder.format_preset_table(evaluation))
        if args.json is not None:
            json_path, written_csv = challenge_folder.write_preset_evaluation(
                evaluation, args.json, output_csv=args.csv
            )
            print(f"\nwrote {json_path} and {written_csv}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by ``args``."""
    if args.csv is not None and args.json is None:
        raise ValueError("--csv needs --json SUMMARY.json; pass both or neither.")
    outputs: list[Output | None] = []
    if args.json is not None:
        out = Path(args.json)
        csv_path = Path(args.csv) if args.csv else out.with_name(f"{out.stem}_per_case.csv")
        outputs = [
            Output(out, "--json", (".json",)),
            Output(csv_path, "--csv", (".csv",)),
        ]
    preset = _preset_name(args)
    if preset is not None:
        return _run_preset(args, preset, outputs)
    with _cli.guard_command_outputs(
        args, outputs, inputs=[args.input, args.reference, args.dataset_json, args.score]
    ):
        evaluation = folders.evaluate_folder(  # looked up at call time: tests replace it
            args.input,
            args.reference,
            **_cli.library_arguments(
                args,
                "labels empty allow_missing dataset_json ignore_label file_ending num_workers "
                "metrics nsd_definition convention score",
            ),
            nsd_tolerance=parse_nsd_tolerance(args.nsd_tolerance),
            executor=executor_from_args(args),
        )
        print(format_table(evaluation))
        if args.json is not None:
            json_path, written_csv = write_evaluation(evaluation, args.json, output_csv=args.csv)
            print(f"\nwrote {json_path} and {written_csv}")
    return 0


#: ``nnunet-ext evaluate`` and ``python -m nnunet_ext.evaluate``.
COMMAND = _cli.Command(
    "nnunet-ext evaluate",
    DESCRIPTION,
    add_arguments,
    run,
    parameter_flags={
        "labels": "--labels",
        "metrics": "--metrics",
        "nsd_tolerance": "--nsd-tolerance",
        "nsd_definition": "--nsd-definition",
        "convention": "--convention",
        "empty": "--empty",
        "ignore_label": "--ignore-label",
        "file_ending": "--file-ending",
        "score": "--score",
        "preset": "--preset",
    },
)
main = COMMAND.main
