"""``nnunet-ext tune`` / ``python -m nnunet_ext.tune``: per-label ensemble weights from CV."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nnunet_ext import _cli
from nnunet_ext.io.outputs import Output
from nnunet_ext.tune.api import tune_weights
from nnunet_ext.tune.boundary import add_to_report, boundary_metrics, format_boundary
from nnunet_ext.tune.deployed import (
    estimate_dict,
    format_estimates,
    read_holdout,
    score_holdout,
)
from nnunet_ext.tune.postprocessing import determine_postprocessing, postprocessing_paths
from nnunet_ext.tune.qc_calibration import calibrate_qc, store_qc
from nnunet_ext.tune.region_api import tune_regions
from nnunet_ext.tune.region_data import region_dataset
from nnunet_ext.tune.region_report import format_region_table, write_region_outputs
from nnunet_ext.tune.report import format_table, write_outputs

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Tune per-label ensemble weights on cross-validation: reads each model's CV probability "
    "folder (CASE.npz, e.g. fold_k/validation of nnUNetv2_train --npz) and the references, "
    "searches the weight simplex per label (hard 0/1 choices included) through the argmax, "
    "never going below equal weights on any label on these cases; then per label chooses a "
    "rule (weighted, 'from' one model, or a decision scale), taking a more complex rule only "
    "when its held-out gain (k-fold over cases) exceeds twice its per-case bootstrap standard "
    "error; and writes the spec that "
    "'nnunet-ext ensemble --spec' reads, a JSON report and a PNG of the gains. "
    "With --postprocess it also fuses the CV probabilities with the spec and determines the "
    "postprocessing plan ('nnunet-ext postprocess apply --plan') on that fused CV result. "
    "Region-based (sigmoid) models (dataset.json regions): per-region weights and decision "
    "thresholds, each kept only when its held-out gain beats the noise, never a region below "
    "its best single model's held-out Dice by more than the noise; with --metric (HD95, NSD, "
    "a lesion-wise metric, a preset, a score file) the Dice search proposes and that metric "
    "decides, gates and guards."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the tune arguments to ``parser``."""
    _cli.add_input(parser, "one CV probability folder per model (CASE.npz)", multiple=True)
    _cli.add_reference(parser, "reference label files, e.g. nnU-Net's gt_segmentations")
    _cli.add_output(
        parser,
        "the ensemble spec to write (report and figure go beside it)",
        metavar="SPEC.json",
    )
    _cli.add_json(parser, "JSON report path (default: <spec stem>_report.json)")
    _cli.add_deprecated_option(parser, "--report", "json", "--json")
    _cli.add_figure(parser, "PNG of per-label gains (default: <spec stem>_gains.png)")
    _cli.add_dataset_json(parser, "dataset.json (default: found next to the folders)")
    parser.add_argument(
        "--splits",
        metavar="splits_final.json",
        help="nnU-Net's splits the models were trained with "
        "($nnUNet_preprocessed/DatasetX/splits_final.json): a model is then not taken as blind "
        "to a label that one of its fold models predicts on its own CV cases",
    )
    parser.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="coarse simplex grid resolution per label before the finer refinement "
        "(default 5 for <= 3 models, 4 for 4, 3 beyond)",
    )
    parser.add_argument(
        "--max-rounds", type=int, default=4, metavar="N", help="coordinate-ascent sweeps at most"
    )
    parser.add_argument(
        "--cv-folds",
        type=int,
        default=5,
        metavar="K",
        help="folds over cases for the held-out gain (0: skip)",
    )
    parser.add_argument(
        "--no-rules",
        action="store_true",
        help="weights only: no per-label rules (from a model, decision scales)",
    )
    parser.add_argument(
        "--holdout",
        nargs="+",
        metavar="DIR",
        help="a second estimate: one probability folder per model (same order as -i) of "
        "labeled cases that no fold trained on, predicted by the deployed models (all folds, "
        "e.g. nnunet-ext predict --save-probabilities); the tuned spec is scored on them "
        "beside the CV estimate (it does not choose on them); needs --holdout-reference",
    )
    parser.add_argument(
        "--holdout-reference",
        metavar="DIR",
        help="reference label files of the --holdout cases",
    )
    _cli.add_num_workers(
        parser, "processes decompressing cases (and fusing, reading for --postprocess)"
    )
    parser.add_argument(
        "--postprocess",
        action="store_true",
        help="also fuse the CV probabilities with the spec (into <spec stem>_cv_fused/) and "
        "write the postprocessing plan chosen on them (<spec stem>_postprocessing.json)",
    )
    parser.add_argument(
        "--qc-calibrate",
        action="store_true",
        help="also calibrate the --qc flag thresholds on the CV cases (fused with the spec) and "
        "store them, with each label's CV volume range, in the spec",
    )
    _cli.add_metric(
        parser,
        "region-based models only: decide each region's weights and threshold, the held-out "
        "gate and the guard (label models: dice only)",
    )
    _cli.add_nsd_tolerance(parser)
    _cli.add_convention(
        parser, "empty-case convention of --metric (nan, max-distance, ...; see evaluate)"
    )
    _cli.add_overwrite(parser, "replace an existing spec (and plan, fused folder)")


def run(args: argparse.Namespace) -> int:
    """Tune as described by ``args``."""
    out = Path(args.output)
    report = Path(args.json) if args.json else out.with_name(f"{out.stem}_report.json")
    figure = Path(args.figure) if args.figure else out.with_name(f"{out.stem}_gains.png")
    outputs = [
        Output(out, "-o/--output", (".json",)),
        Output(report, "--json", (".json",)),
        Output(figure, "--figure", (".png",)),
    ]
    if args.postprocess:
        fused_dir, plan_path = postprocessing_paths(out)
        outputs.append(
            Output(fused_dir, "--postprocess folder", folder=True, cases=True, exists_ok=False)
        )
        outputs.append(Output(plan_path, "--postprocess plan", (".json",)))
    if (args.holdout is None) != (args.holdout_reference is None):
        raise ValueError(
            "--holdout and --holdout-reference must be given together (the hold-out cases' "
            "probability folders and their references)."
        )
    if args.holdout is not None and len(args.holdout) != len(args.input):
        raise ValueError(
            f"--holdout must list one folder per -i model ({len(args.input)}), in the same "
            f"order; got {len(args.holdout)}."
        )
    holdout = [*(args.holdout or []), args.holdout_reference]
    with _cli.guard_command_outputs(
        args,
        outputs,
        inputs=[*args.input, args.reference, args.dataset_json, args.splits, *holdout],
    ):
        return _tune(args, out, report, figure)


def _tune(args: argparse.Namespace, out: Path, report_path: Path, figure_path: Path) -> int:
    regions = region_dataset(args.input, args.reference, args.dataset_json)
    if regions is not None:
        return _tune_regions(args, regions[0], out, report_path, figure_path)
    if args.metric != "dice":
        raise ValueError(
            f"--metric must be dice for label (softmax) models; got {args.metric!r}. Deciding on "
            "another metric is for region-based models only for now: run without --metric."
        )
    holdout = None
    if args.holdout is not None:  # read (and refused) before anything is tuned or written
        holdout = read_holdout(
            args.holdout,
            args.holdout_reference,
            num_workers=args.num_workers,
            dataset_json=args.dataset_json,
        )
    result = tune_weights(
        args.input,
        args.reference,
        **_cli.library_arguments(args, "num_workers steps max_rounds cv_folds dataset_json splits"),
        rules=not args.no_rules,
    )
    print(format_table(result))
    spec, report, figure = write_outputs(
        result, out, report_path=report_path, figure_path=figure_path
    )
    print(f"\nwrote {spec}, {report} and {figure}")
    if args.qc_calibrate:
        if result.left_out:
            raise ValueError(
                "--qc-calibrate must fuse every member on every CV case; got cases missing from "
                "some -i folders. Calibrate on folders with the same cases."
            )
        thresholds = calibrate_qc(spec, result.reference_dir, num_workers=args.num_workers)
        store_qc(spec, thresholds)
        print(
            f"QC thresholds calibrated on the CV cases, stored in {spec}: "
            f"min member Dice {thresholds.min_member_dice}, max volume CV "
            f"{thresholds.max_volume_cv}, min estimated Dice {thresholds.min_estimated_dice}"
        )
    boundary = boundary_metrics(
        result, num_workers=args.num_workers, dataset_json=args.dataset_json
    )
    add_to_report(report, boundary)
    print("\n" + format_boundary(boundary))
    if holdout is not None:
        section = estimate_dict(result, score_holdout(result, holdout))
        add_to_report(report, section, key="holdout")
        print("\n" + format_estimates(section))
    if args.postprocess:
        fused, plan_file, plan = determine_postprocessing(
            result, spec, num_workers=args.num_workers
        )
        steps = [
            f"{step['operation']}{'' if step['label'] is None else ' ' + str(step['label'])}"
            for step in plan.metrics.get("steps", [])
            if step.get("accepted")
        ]
        print(
            f"postprocessing plan on the fused CV result ({fused}): "
            f"{', '.join(steps) if steps else 'no step improves the CV Dice'}; wrote {plan_file}"
        )
    return 0


#: Options of the label tuner that region models do not take (flag, whether it was given).
_LABEL_ONLY = (
    ("--holdout", lambda a: a.holdout is not None),
    ("--postprocess", lambda a: a.postprocess),
    ("--splits", lambda a: a.splits is not None),
    ("--no-rules", lambda a: a.no_rules),
    ("--qc-calibrate", lambda a: a.qc_calibrate),
)


def _tune_regions(
    args: argparse.Namespace, label_spec: Any, out: Path, report_path: Path, figure_path: Path
) -> int:
    """Region-based (sigmoid) models: per-region weights and thresholds."""
    for flag, given in _LABEL_ONLY:
        if given(args):
            raise ValueError(
                f"{flag} must not be given for region-based (sigmoid) models (dataset.json "
                f"defines regions); got it. Run without {flag}."
            )
    result = tune_regions(
        args.input,
        args.reference,
        label_spec,
        **_cli.library_arguments(
            args, "num_workers steps cv_folds metric nsd_tolerance convention"
        ),
    )
    print(format_region_table(result))
    spec, report, figure = write_region_outputs(
        result, out, report_path=report_path, figure_path=figure_path
    )
    print(f"\nwrote {spec}, {report} and {figure}")
    return 0


#: ``nnunet-ext tune`` and ``python -m nnunet_ext.tune``.
COMMAND = _cli.Command(
    "nnunet-ext tune",
    DESCRIPTION,
    add_arguments,
    run,
    parameter_flags={
        "holdout_dirs": "--holdout",
        "holdout_reference": "--holdout-reference",
        "metric": "--metric",
        "nsd_tolerance": "--nsd-tolerance",
        "convention": "--convention",
    },
)
main = COMMAND.main
