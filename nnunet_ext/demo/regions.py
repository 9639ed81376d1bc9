"""The region demo (``nnunet-ext demo --regions``): region-based models, tuned, on test cases.

The same pipeline as the label demo on a BraTS-style region dataset made in code
(:mod:`nnunet_ext.synthetic_regions`: nested WT ⊃ TC ⊃ ET, ``regions_class_order``), each step
the command a user would type: plan and preprocess (2d, 3d_fullres) → train both on two folds
with ``--npz`` (sigmoid outputs) → tune per-region weights and thresholds on the CV
probabilities (``nnunet-ext tune``) → predict the test images with each model's two folds
(``nnUNetv2_predict --save_probabilities``) → ensemble with equal weights and 0.5, and with the
tuned spec → evaluate every model and ensemble on the test references (region Dice).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_ext.demo.config import CONFIGURATIONS, FOLDS, DemoConfig
from nnunet_ext.demo.pipeline import _merge_cross_validation, _prepare_output
from nnunet_ext.demo.runner import _ours, _Runner, nnunet_command
from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.evaluate.report import write_evaluation
from nnunet_ext.synthetic import nnunet_environment
from nnunet_ext.synthetic_regions import make_region_raw_dataset

__all__ = ["REGION_DATASET_ID", "RegionDemoResult", "format_region_summary", "run_region_demo"]

REGION_DATASET_ID = 502
REGION_DATASET_NAME = "Dataset502_SyntheticTumour"


@dataclass
class RegionDemoResult:
    """What the region demo measured.

    Attributes:
        output_dir: The demo folder.
        dice: Method (``2d``, ``3d_fullres``, ``equal``, ``tuned``) to region name to mean
            test Dice (and ``"mean"``: the mean over regions).
        paths: Named artefacts.
        timings: Seconds per step.
    """

    output_dir: Path
    dice: dict[str, dict[str, float]] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def run_region_demo(
    output_dir: str | os.PathLike[str],
    config: DemoConfig | None = None,
    *,
    on_step: Callable[[str], None] | None = None,
) -> RegionDemoResult:
    """Run the region pipeline (module docstring) and return the test Dice of every method.

    Raises:
        FileExistsError: If ``output_dir`` holds something that is not a demo.
        ValueError: If a step fails (the message names its log file).
    """
    config = config or DemoConfig()
    out = Path(output_dir).resolve()
    _prepare_output(out)
    (out / "logs").mkdir()
    raw, pre, results = out / "nnUNet_raw", out / "nnUNet_preprocessed", out / "nnUNet_results"
    env = nnunet_environment(raw, pre, results, MPLBACKEND="Agg")
    run = _Runner(out / "logs", env, on_step or (lambda step: None))
    res = RegionDemoResult(out)
    dataset = make_region_raw_dataset(
        raw,
        dataset_id=REGION_DATASET_ID,
        num_training=config.num_training,
        num_test=config.num_test,
        shape=config.shape,
        seed=config.seed,
    )
    res.paths["raw dataset"] = dataset
    _plan(run, dataset, pre / REGION_DATASET_NAME)
    cv_dirs, model_dirs = _train(run, config, results / REGION_DATASET_NAME, out)
    res.paths.update({f"model {c}": d for c, d in zip(CONFIGURATIONS, model_dirs, strict=True)})
    spec = out / "tune" / "spec.json"
    spec.parent.mkdir()
    references = pre / REGION_DATASET_NAME / "gt_segmentations"
    run(
        "tune",
        _ours("tune", "-i", *map(str, cv_dirs), "-r", str(references), "-o", str(spec)),
    )
    res.paths["tuned spec"] = spec
    folders = _predict(run, config, dataset, out / "predictions", spec)
    for method, folder in folders.items():
        res.dice[method] = _region_dice(folder, dataset / "labelsTs", out / "evaluation", method)
    res.paths.update({f"predictions {m}": f for m, f in folders.items()})
    res.timings = run.timings
    return res


def _plan(run: _Runner, dataset: Path, preprocessed: Path) -> None:
    run(
        "plan_and_preprocess",
        [
            nnunet_command("nnUNetv2_plan_and_preprocess"),
            *("-d", str(REGION_DATASET_ID), "-c", *CONFIGURATIONS),
            *("-np", "1", "-npfp", "1", "--verify_dataset_integrity"),
        ],
    )
    cases = sorted(p.name[: -len(".nii.gz")] for p in (dataset / "labelsTr").glob("*.nii.gz"))
    half = len(cases) // 2
    splits = [
        {"train": cases[half:], "val": cases[:half]},
        {"train": cases[:half], "val": cases[half:]},
    ]
    (preprocessed / "splits_final.json").write_text(json.dumps(splits, indent=2))


def _train(
    run: _Runner, config: DemoConfig, results: Path, out: Path
) -> tuple[list[Path], list[Path]]:
    """Train every configuration and fold with --npz; the merged CV folders and model folders."""
    cv_dirs, model_dirs = [], []
    for configuration in CONFIGURATIONS:
        model_dir = results / f"{config.trainer}__nnUNetPlans__{configuration}"
        for fold in FOLDS:
            run(
                f"train/{configuration}/fold_{fold}",
                [
                    nnunet_command("nnUNetv2_train"),
                    *(str(REGION_DATASET_ID), configuration, str(fold), "-tr", config.trainer),
                    *("-device", "cpu", "--npz"),
                ],
                **config.training_environment(configuration),
            )
        model_dirs.append(model_dir)
        cv_dirs.append(_merge_cross_validation(model_dir, out / "cross_validation" / configuration))
    return cv_dirs, model_dirs


def _predict(
    run: _Runner, config: DemoConfig, dataset: Path, predictions: Path, spec: Path
) -> dict[str, Path]:
    """Each model's test predictions (with probabilities) and the two ensembles."""
    folders: dict[str, Path] = {}
    for configuration in CONFIGURATIONS:
        target = predictions / configuration
        run(
            f"predict/{configuration}",
            [
                nnunet_command("nnUNetv2_predict"),
                *("-i", str(dataset / "imagesTs"), "-o", str(target)),
                *("-d", str(REGION_DATASET_ID), "-c", configuration, "-tr", config.trainer),
                *("-f", *map(str, FOLDS), "--save_probabilities", "-device", "cpu"),
                *("-npp", "1", "-nps", "1"),
            ],
        )
        folders[configuration] = target
    members = [str(folders[c]) for c in CONFIGURATIONS]
    equal, tuned = predictions / "ensemble_equal", predictions / "ensemble_tuned"
    run("ensemble/equal", _ours("ensemble", "-i", *members, "-o", str(equal)))
    run("ensemble/tuned", _ours("ensemble", "-i", *members, "--spec", str(spec), "-o", str(tuned)))
    return {**folders, "equal": equal, "tuned": tuned}


def _region_dice(prediction: Path, reference: Path, out: Path, method: str) -> dict[str, float]:
    """Mean test Dice per region name, and their mean (``"mean"``)."""
    evaluation = evaluate_folder(
        prediction, reference, dataset_json=prediction / "dataset.json", metrics=["dice"]
    )
    out.mkdir(exist_ok=True)
    write_evaluation(evaluation, out / f"{method}.json")
    dice = {summary.name: float(summary.dice) for summary in evaluation.labels}
    defined = [v for v in dice.values() if not math.isnan(v)]
    dice["mean"] = sum(defined) / len(defined) if defined else math.nan
    return dice


def format_region_summary(result: RegionDemoResult) -> str:
    """The test Dice table, and whether the tuned ensemble kept up with the best model.

    Examples:
        >>> r = RegionDemoResult(Path("demo"), dice={
        ...     "2d": {"WT": 0.8, "mean": 0.8}, "3d_fullres": {"WT": 0.9, "mean": 0.9},
        ...     "equal": {"WT": 0.88, "mean": 0.88}, "tuned": {"WT": 0.91, "mean": 0.91}})
        >>> print(format_region_summary(r))
        method      WT      mean
        2d          0.8000  0.8000
        3d_fullres  0.9000  0.9000
        equal       0.8800  0.8800
        tuned       0.9100  0.9100
        tuned mean region Dice - best single model's: +0.0100 (acceptance: >= -0.01)
    """
    methods = list(result.dice)
    columns = list(next(iter(result.dice.values()))) if result.dice else []
    width = max(len(m) for m in methods) if methods else 6
    lines = ["  ".join([f"{'method':<{width}}", *[f"{c:<6}" for c in columns]]).rstrip()]
    for method in methods:
        values = [f"{result.dice[method].get(c, math.nan):.4f}" for c in columns]
        lines.append("  ".join([f"{method:<{width}}", *values]))
    best = max(result.dice[c]["mean"] for c in CONFIGURATIONS if c in result.dice)
    if "tuned" in result.dice:
        margin = result.dice["tuned"]["mean"] - best
        lines.append(
            f"tuned mean region Dice - best single model's: {margin:+.4f} (acceptance: >= -0.01)"
        )
    return "\n".join(lines)
