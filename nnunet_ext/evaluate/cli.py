"""``nnunet-ext evaluate`` / ``python -m nnunet_ext.evaluate``: Dice/IoU per case and label."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from nnunet_ext._cli import command_name, main_for
from nnunet_ext._parallel import add_executor_arguments, executor_from_args
from nnunet_ext.io.outputs import Output, guard_outputs

__all__ = ["DESCRIPTION", "add_arguments", "main", "parse_nsd_tolerance", "run"]

DESCRIPTION = (
    "Evaluate predicted label maps against references: Dice, IoU, TP/FP/FN and voxel counts per "
    "case and label (or region), per-label means and how many cases had an empty reference or "
    "prediction. Default conventions equal nnU-Net's compute_metrics_on_folder (Dice NaN when "
    "both are empty, left out of the means); --empty switches them. Prints a table; -o writes a "
    "strict-JSON summary and a per-case CSV."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the evaluate arguments to ``parser``."""
    parser.add_argument(
        "prediction_dir", metavar="PRED_DIR", help="folder of predicted label files"
    )
    parser.add_argument(
        "reference_dir", metavar="REF_DIR", help="folder of reference label files (same names)"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="SUMMARY.json",
        default=None,
        help="write the summary here and the per-case CSV beside it (<stem>_per_case.csv)",
    )
    parser.add_argument(
        "--csv", metavar="PER_CASE.csv", default=None, help="per-case CSV path (needs -o)"
    )
    parser.add_argument(
        "--labels",
        nargs="+",
        metavar="LABEL",
        default=None,
        help="labels to score: values (1 2), regions (1,2) or names from dataset.json "
        "(default: dataset.json's foreground labels or regions)",
    )
    parser.add_argument(
        "--empty",
        choices=("nan", "one", "skip"),
        default="nan",
        help="both empty: nan = NaN, left out of the mean (nnU-Net); one = 1; "
        "skip = leave every case with an empty reference out of that label's mean",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="evaluate the cases present in both folders instead of failing on a missing one",
    )
    parser.add_argument(
        "--dataset-json",
        metavar="PATH",
        default=None,
        help="dataset.json with labels, regions, ignore, file_ending (default: found nearby)",
    )
    parser.add_argument(
        "--ignore-label",
        type=int,
        default=None,
        help="reference value not counted (default: dataset.json's 'ignore')",
    )
    parser.add_argument(
        "--file-ending",
        default=None,
        help="label file ending (default: dataset.json's, else .nii.gz)",
    )
    parser.add_argument(
        "-j",
        "--num-workers",
        type=int,
        default=1,
        dest="num_workers",
        help="processes reading and counting cases",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_executor_arguments(parser)
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        default=["dice", "iou"],
        help="metrics: dice iou hd hd95 hd95_pooled assd nsd volume (default: dice iou, as "
        "before; distances in mm from each reference's spacing)",
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
        "--convention",
        default="nan",
        metavar="NAME",
        help="values of empty cases: nan (distances NaN, counted; default), brats (both empty: "
        "Dice 1, HD95 0; one empty: Dice 0, HD95 374), max-distance (one empty: the image "
        "diagonal in mm)",
    )
    parser.add_argument(
        "--score",
        metavar="SCORE.json",
        default=None,
        help="score file combining per-label metrics into one number (see README)",
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


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by ``args``."""
    from pathlib import Path

    from nnunet_ext.evaluate.folders import evaluate_folder
    from nnunet_ext.evaluate.report import format_table, write_evaluation

    if args.num_workers < 1:
        raise ValueError(f"--num-workers must be >= 1; got {args.num_workers}.")
    if args.csv is not None and args.output is None:
        raise ValueError("--csv needs -o/--output SUMMARY.json; pass both or neither.")
    outputs: list[Output | None] = []
    if args.output is not None:
        out = Path(args.output)
        csv_path = Path(args.csv) if args.csv else out.with_name(f"{out.stem}_per_case.csv")
        outputs = [
            Output(out, "-o/--output", (".json",)),
            Output(csv_path, "--csv", (".csv",)),
        ]
    with guard_outputs(
        outputs,
        inputs=[args.prediction_dir, args.reference_dir, args.dataset_json, args.score],
        overwrite=args.overwrite,
        command=command_name(args, "nnunet-ext evaluate"),
    ):
        evaluation = evaluate_folder(
            args.prediction_dir,
            args.reference_dir,
            labels=args.labels,
            empty=args.empty,
            allow_missing=args.allow_missing,
            dataset_json=args.dataset_json,
            ignore_label=args.ignore_label,
            file_ending=args.file_ending,
            num_workers=args.num_workers,
            metrics=args.metrics,
            nsd_tolerance=parse_nsd_tolerance(args.nsd_tolerance),
            convention=args.convention,
            score=args.score,
            executor=executor_from_args(args),
        )
        print(format_table(evaluation))
        if args.output is not None:
            json_path, written_csv = write_evaluation(evaluation, args.output, output_csv=args.csv)
            print(f"\nwrote {json_path} and {written_csv}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m nnunet_ext.evaluate``."""
    return main_for("python -m nnunet_ext.evaluate", DESCRIPTION, add_arguments, run, argv)
