"""``nnunet-ext demo``: run nnunet_ext end to end on a synthetic dataset, with real nnU-Net."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from nnunet_ext._cli import main_for

DESCRIPTION = (
    "Build a tiny synthetic 3D dataset, then run the real nnUNetv2_plan_and_preprocess, "
    "nnUNetv2_train -tr CustomEpochs with early stopping, and nnUNetv2_predict with probabilities. "
    "Prints where everything is."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's arguments."""
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("nnunet_ext_demo"),
        help="demo folder (rebuilt if it holds an earlier demo)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller, faster run (used by tests)")


def run(args: argparse.Namespace) -> int:
    """Run the demo and print a summary."""
    from nnunet_ext.demo.pipeline import DemoConfig, run_demo

    print(
        "nnunet-ext demo: running real nnU-Net on a synthetic dataset (CPU; a few minutes)...",
        flush=True,
    )
    result = run_demo(args.output, DemoConfig.quick() if args.quick else DemoConfig())
    record = result.training_record
    settings = record["settings"]
    stop = record.get("stop")
    assert isinstance(settings, dict)
    print()
    print("Training (-tr CustomEpochs, 3d_fullres, fold 0)")
    print(
        f"  epochs: {record['epochs_completed']} of {settings['num_epochs']} "
        f"(patience {settings['patience']}, min_delta {settings['min_delta']})"
    )
    if isinstance(stop, dict):
        print(f"  stopped early: {stop['message']}")
    else:
        print("  ran to the configured epoch count")
    print(f"  best epoch {record['best_epoch']}, EMA pseudo Dice {record['best_ema']}")
    print()
    print("Where everything is")
    rows = [
        ("raw dataset", result.raw_dataset),
        ("preprocessed", result.preprocessed_dataset),
        ("fold folder", result.fold_dir),
        ("training record", result.fold_dir / "nnunet_ext_training.json"),
        ("validation (--npz)", result.fold_dir / "validation"),
        ("test predictions", result.predictions),
        ("step logs", result.output_dir / "logs"),
    ]
    for label, path in rows:
        print(f"  {label:<20} {path}")
    print()
    print("Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m nnunet_ext.demo``."""
    return main_for("nnunet-ext demo", DESCRIPTION, add_arguments, run, argv)
