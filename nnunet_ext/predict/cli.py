"""``python -m nnunet_ext.predict`` / ``nnunet-ext predict``: multi-model prediction in one pass."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nnunet_ext import _cli
from nnunet_ext._parallel import add_executor_arguments, executor_from_args
from nnunet_ext.io.outputs import Output, check_outputs
from nnunet_ext.qc.options import QC_PARAMETER_FLAGS, add_qc_arguments, qc_options_from_args

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Predict a folder of images with a weighted ensemble of trained nnU-Net models in one pass: "
    "each member predicts with nnU-Net's own predictor and export, probabilities are fused in "
    "memory (no per-model .npz files) and uint8 labels are written with nnU-Net's writer. Equal "
    "weights give exactly nnUNetv2_predict --save_probabilities per model + nnUNetv2_ensemble. "
    "Reruns resume; --claim lets several processes share one output folder."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the predict options to ``parser``."""
    _cli.add_input(
        parser,
        "folder of images named CASE_0000<file_ending> (one file per channel)",
        metavar="IMAGES",
    )
    _cli.add_output(parser, "output folder")
    members = _cli.add_models(parser)
    members.add_argument(
        "--spec",
        type=Path,
        metavar="SPEC.json",
        help="predict spec: ensemble spec whose members are 'model' folders (with optional "
        "'folds', 'checkpoint') or 'path' probability folders, with weights and label_weights",
    )
    members.add_argument(
        "--bundle",
        type=Path,
        metavar="BUNDLE.zip",
        help="run an exported bundle's whole recipe (members, weights, postprocessing) after "
        "verifying its checksums (nnunet-ext export)",
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        type=float,
        metavar="W",
        help="one global weight per -m model (default: equal weights)",
    )
    _cli.add_folds(parser)
    parser.add_argument(
        "--checkpoint",
        default="checkpoint_final.pth",
        metavar="NAME",
        help="checkpoint file in each fold folder (e.g. checkpoint_best.pth)",
    )
    _cli.add_plan(
        parser,
        "postprocessing plan (postprocess determine) applied to each case before its label "
        "write; labels equal 'postprocess apply' on the plain output",
    )
    _add_runtime_arguments(parser)


def _add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Sliding window, TTA, device, outputs and work splitting."""
    parser.add_argument(
        "--step-size",
        type=float,
        default=0.5,
        metavar="S",
        help="sliding-window step as a fraction of the patch size (larger: faster)",
    )
    parser.add_argument(
        "--disable-tta", action="store_true", help="no mirroring test-time augmentation"
    )
    parser.add_argument(
        "--mirror-axes",
        nargs="+",
        type=int,
        metavar="AXIS",
        help="mirror only these axes (each model uses those it allows; 2d models 0 and 1)",
    )
    _cli.add_device(parser, "device (default: cuda if available, else cpu)")
    _cli.add_save_probabilities(parser)
    parser.add_argument(
        "--part-id", type=int, default=0, metavar="K", help="this process's part (as nnU-Net)"
    )
    parser.add_argument(
        "--num-parts", type=int, default=1, metavar="N", help="number of parts (as nnU-Net)"
    )
    parser.add_argument(
        "--claim",
        action="store_true",
        help="share the cases with other processes on the same output folder via claim files",
    )
    parser.add_argument(
        "--claim-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="a claim whose heartbeat is older than this expires (processes on other hosts)",
    )
    _cli.add_num_workers(
        parser,
        "CPU worker processes: 1 predicts case by case; N >= 2 preprocesses the next case in "
        "one process and exports finished cases in N - 1 processes while the networks run "
        "(nnUNetv2_predict -npp 1 -nps N-1); byte-identical files",
    )
    _cli.add_overwrite(parser, "redo cases whose outputs already exist")
    _cli.add_allow_unsafe_checkpoints(parser)
    add_executor_arguments(parser, actors=True)
    add_qc_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the prediction described by parsed ``args``; print a JSON summary on stdout."""
    if args.bundle is not None:
        return _run_bundle(args)
    from nnunet_ext.predict.folders import predict_folder

    if args.weights is not None and args.model_dirs is None:
        raise ValueError("--weights goes with -m/--model; with --spec put the weights in the spec.")
    qc = qc_options_from_args(args)
    if qc is not None and qc.report is not None:  # predict_folder guards its output folder
        report = Output(qc.report, "--qc-report", (".html",))
        check_outputs([report], inputs=[], overwrite=args.overwrite)
    summary = predict_folder(
        args.input,
        args.output,
        **_cli.library_arguments(
            args,
            "model_dirs spec weights folds checkpoint step_size disable_tta mirror_axes device "
            "save_probabilities part_id num_parts claim claim_timeout overwrite "
            "allow_unsafe_checkpoints num_workers",
        ),
        executor=executor_from_args(args),
        cpus_per_worker=args.ray_cpus_per_worker,
        postprocessing=args.plan,
        qc=qc,
    )
    print(json.dumps(summary.to_dict()))
    return 0


def _run_bundle(args: argparse.Namespace) -> int:
    """The ``--bundle`` branch of ``nnunet-ext predict``: print a JSON summary on stdout."""
    given = [
        flag
        for flag, value in (
            ("--weights", args.weights),
            ("-f/--folds", args.folds),
            ("--mirror-axes", args.mirror_axes),
            ("--claim", args.claim or None),
            ("--save-probabilities", args.save_probabilities or None),
            ("--plan", args.plan),
            ("--qc", args.qc or None),
        )
        if value is not None
    ]
    if args.allow_unsafe_checkpoints:
        raise ValueError(
            "--allow-unsafe-checkpoints does not apply to --bundle: a bundle holds only "
            "checkpoints that load as weights (nnunet-ext export writes no other)."
        )
    if given or args.checkpoint != "checkpoint_final.pth" or args.num_parts != 1:
        extra = ", ".join(given) or "--checkpoint/--num-parts"
        raise ValueError(
            f"--bundle runs the bundle's own recipe; remove {extra} (export another bundle to "
            "change members, folds or checkpoints)."
        )
    from nnunet_ext.predict.bundle import predict_bundle

    summary = predict_bundle(
        args.bundle,
        args.input,
        args.output,
        **_cli.library_arguments(args, "step_size disable_tta device overwrite num_workers"),
    )
    print(json.dumps(summary))
    return 0


#: ``nnunet-ext predict`` and ``python -m nnunet_ext.predict``.
COMMAND = _cli.Command(
    "nnunet-ext predict",
    DESCRIPTION,
    add_arguments,
    run,
    parameter_flags={
        "model_dirs": "-m/--model",
        "mirror_axes": "--mirror-axes",
        "step_size": "--step-size",
        "part_id": "--part-id",
        "num_parts": "--num-parts",
        "claim_timeout": "--claim-timeout",
        "cpus_per_worker": "--ray-cpus-per-worker",
        "claim": "--claim",
        "weights": "--weights",
        "spec": "--spec",
        "folds": "-f/--folds",
        "checkpoint": "--checkpoint",
        "device": "--device",
        "bundle": "--bundle",
        "postprocessing": "--plan",
        **QC_PARAMETER_FLAGS,
    },
)
main = COMMAND.main
