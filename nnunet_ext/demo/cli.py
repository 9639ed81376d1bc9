"""``nnunet-ext demo``: run nnunet_ext end to end on a synthetic dataset, with real nnU-Net."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnunet_ext import _cli
from nnunet_ext.demo.config import DemoConfig
from nnunet_ext.demo.pipeline import run_demo
from nnunet_ext.demo.regions import format_region_summary, run_region_demo
from nnunet_ext.demo.summary import format_summary
from nnunet_ext.trainers.settings import MAX_SEED

DESCRIPTION = (
    "Run nnunet_ext end to end with real nnU-Net on a synthetic cardiac-like dataset: plan and "
    "preprocess; train 2d and 3d_fullres on two folds with -tr CustomEpochs (early stopping) "
    "and --npz; tune per-label ensemble weights on the cross-validation; determine "
    "postprocessing; predict; ensemble; postprocess; evaluate; build and check a submission. "
    "Prints a per-label Dice table and where every artefact is. With --regions: the same on a "
    "region-based (BraTS-style, sigmoid) dataset, tuning per-region weights and thresholds."
)


def _seed(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or int(value) > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_SEED}]; got {text!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's arguments."""
    what = "demo folder (rebuilt if it holds an earlier demo)"
    _cli.add_output(parser, what, metavar="DIR", required=False, default=Path("nnunet_ext_demo"))
    parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="S",
        help="seed of the synthetic dataset and of nnU-Net's training (nnUNet_seed, with "
        "nnUNet_n_proc_DA=0: a seed gives the same models on the same machine and software)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller, faster run (used by tests)")
    parser.add_argument(
        "--regions",
        action="store_true",
        help="region-based models (nested WT, TC, ET regions, sigmoid outputs): train, tune "
        "per-region weights and thresholds, ensemble and evaluate region Dice on the test cases",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo and print the summary."""
    quiet = getattr(args, "quiet", 0) > 0
    print(
        f"nnunet-ext demo: real nnU-Net on a synthetic dataset, on the CPU, in {args.output}",
        flush=True,
    )

    def show(step: str) -> None:
        if not quiet:
            print(f"  ... {step}", file=sys.stderr, flush=True)

    config = DemoConfig.quick(args.seed) if args.quick else DemoConfig(seed=args.seed)
    if args.regions:
        regions = run_region_demo(args.output, config, on_step=show)
        print()
        print(format_region_summary(regions))
        where = regions.output_dir
        print(f"\nlogs: {where / 'logs'}; evaluations: {where / 'evaluation'}")
        return 0
    result = run_demo(args.output, config, on_step=show)
    print()
    print(format_summary(result))
    return 0


#: ``nnunet-ext demo`` and ``python -m nnunet_ext.demo``.
COMMAND = _cli.Command("nnunet-ext demo", DESCRIPTION, add_arguments, run)
main = COMMAND.main
