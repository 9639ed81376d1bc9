"""The demo pipeline: nnunet_ext end to end with real nnU-Net, on a dataset made in code.

Each step runs the command a user would type, in a subprocess: nnU-Net's own console scripts
(``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train``, ``nnUNetv2_predict``) and ours
(``python -m nnunet_ext <command>``), with ``nnUNet_raw``, ``nnUNet_preprocessed`` and
``nnUNet_results`` inside the demo folder. Every command and its output is kept in ``logs/``.

Steps: synthetic dataset → plan and preprocess (2d, 3d_fullres) → train both configurations on
two folds with ``-tr CustomEpochs`` (early stopping on) and ``--npz`` → training curves → tune
per-label ensemble weights on the cross-validation probabilities → determine postprocessing on
the tuned cross-validation ensemble → predict the test images with probabilities → ensemble
with equal weights → the tuned ensemble with ``nnunet-ext predict --spec`` in one pass (and, to
compare time, disk and labels, by ``ensemble --spec`` on the probability folders) →
postprocess → evaluate everything against the test references → build and check a submission
zip with a preview.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from nnunet_ext.demo.comparison import compare_with_equal_weights
from nnunet_ext.demo.config import CONFIGURATIONS, DATASET_ID, DATASET_NAME, FOLDS, DemoConfig
from nnunet_ext.demo.quality import flagged_test_cases
from nnunet_ext.demo.record import write_record
from nnunet_ext.demo.runner import _ours, _Runner, nnunet_command
from nnunet_ext.demo.summary import DemoResult
from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.evaluate.report import write_evaluation
from nnunet_ext.io import read_labels
from nnunet_ext.synthetic import DEFAULT_LABELS, make_raw_dataset, nnunet_environment

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)

MARKER = ".nnunet_ext_demo"


def _prepare_output(output_dir: Path) -> None:
    if output_dir.exists() and any(output_dir.iterdir()):
        if not (output_dir / MARKER).exists():
            raise FileExistsError(
                f"output_dir {output_dir} exists and is not a demo folder; "
                "choose an empty or new folder."
            )
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MARKER).write_text(
        "made by nnunet-ext demo; deleted and rebuilt on the next run\n"
    )


def _merge_cross_validation(model_dir: Path, out: Path) -> Path:
    """Gather ``fold_k/validation`` of all folds in one folder (hard links where possible)."""
    out.mkdir(parents=True)
    for name in ("dataset.json", "plans.json"):
        shutil.copy2(model_dir / name, out / name)
    for fold in FOLDS:
        for file in sorted((model_dir / f"fold_{fold}" / "validation").iterdir()):
            if file.suffix in {".npz", ".pkl"} or file.name.endswith(".nii.gz"):
                try:
                    os.link(file, out / file.name)
                except OSError:
                    shutil.copy2(file, out / file.name)
    return out


def _model_spec(tuned_spec: Path, model_dirs: Sequence[Path], folder: Path) -> Path:
    """The tuned spec with each member's probability folder replaced by its model folder."""
    spec = json.loads(tuned_spec.read_text())
    for member, model_dir in zip(spec["members"], model_dirs, strict=True):
        member.pop("path")
        member["model"] = str(model_dir)
    out = folder / "predict_spec.json"
    out.write_text(json.dumps(spec, indent=2) + "\n")
    return out


def _route_costs(
    timings: Mapping[str, float], member_dirs: Sequence[Path], predictions: Path
) -> dict[str, dict[str, float]]:
    """Time and intermediate bytes of the tuned ensemble: one pass vs. the npz route."""
    npz_bytes = sum(
        p.stat().st_size for d in member_dirs for p in d.iterdir() if p.suffix in {".npz", ".pkl"}
    )
    one_pass, npz_route = predictions / "ensemble_tuned", predictions / "ensemble_tuned_npz_route"
    identical = all(
        (read_labels(f).array == read_labels(npz_route / f.name).array).all()
        for f in sorted(one_pass.glob("*.nii.gz"))
    )
    predict_steps = [f"predict/{c}" for c in CONFIGURATIONS]
    return {
        "nnunet-ext predict --spec": {"seconds": timings["predict/tuned"], "npz_bytes": 0.0},
        "npz route": {
            "seconds": sum(timings[s] for s in predict_steps)
            + timings["ensemble/tuned (npz route)"],
            "npz_bytes": float(npz_bytes),
            "identical_labels": float(identical),
        },
    }


def _mean_dice(
    prediction_dir: Path, reference_dir: Path, out_json: Path
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean Dice and HD95 (mm) per label name, and their foreground means."""
    evaluation = evaluate_folder(
        prediction_dir,
        reference_dir,
        dataset_json=prediction_dir / "dataset.json",
        metrics=["dice", "hd95"],
    )
    write_evaluation(evaluation, out_json)
    dice = {summary.name: float(summary.dice) for summary in evaluation.labels}
    dice["foreground mean"] = float(evaluation.foreground_dice)
    hd95 = {summary.name: float(summary.values["hd95"]) for summary in evaluation.labels}
    defined = [v for v in hd95.values() if not math.isnan(v)]
    hd95["foreground mean"] = float(sum(defined) / len(defined)) if defined else math.nan
    return dice, hd95


def run_demo(
    output_dir: str | os.PathLike[str],
    config: DemoConfig | None = None,
    *,
    on_step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the whole pipeline and return where everything is and what it measured.

    Args:
        output_dir: Demo folder; rebuilt if it holds an earlier demo, refused if it holds
            anything else.
        config: Sizes and settings; :meth:`DemoConfig.quick` for a short run.
        on_step: Called with each step's name as it starts (progress display).

    Returns:
        Paths, training records, per-label Dice of every method, timings.

    Raises:
        FileExistsError: If ``output_dir`` holds something that is not a demo.
        ValueError: If a step fails (the message names its log file).
    """
    config = config or DemoConfig()
    out = Path(output_dir).resolve()
    _prepare_output(out)
    (out / "logs").mkdir()
    demo = _Demo(config, out, on_step or (lambda step: logger.info("demo: %s", step)))
    start = time.perf_counter()
    demo.dataset = make_raw_dataset(
        demo.raw,
        dataset_id=DATASET_ID,
        num_training=config.num_training,
        num_test=config.num_test,
        shape=config.shape,
        seed=config.seed,
        num_holdout=config.num_holdout,
        anatomy=config.anatomy,
    )
    demo.run.timings["dataset"] = time.perf_counter() - start
    demo.res.paths["raw dataset"] = demo.dataset
    _stage_plan(demo)
    cv_dirs = _stage_train(demo)
    holdout_dirs = _stage_predict_holdout(demo)
    spec, pp_plan = _stage_tune(demo, cv_dirs, holdout_dirs)
    final = _stage_predict(demo, spec, pp_plan)
    _stage_evaluate(demo, final)
    _stage_submission(demo, final)
    demo.res.paths["logs"] = out / "logs"
    demo.res.timings = demo.run.timings
    demo.res.paths["record"] = write_record(demo.res, config, out)
    return demo.res


class _Demo:
    """What the demo's stages share: settings, folders, the step runner and the result."""

    def __init__(self, config: DemoConfig, out: Path, on_step: Callable[[str], None]) -> None:
        self.config, self.out = config, out
        self.raw = out / "nnUNet_raw"
        self.preprocessed = out / "nnUNet_preprocessed"
        self.results = out / "nnUNet_results"
        env = nnunet_environment(self.raw, self.preprocessed, self.results, MPLBACKEND="Agg")
        self.run = _Runner(out / "logs", env, on_step)
        self.res = DemoResult(out)
        self.dataset = out
        self.references = self.preprocessed / DATASET_NAME / "gt_segmentations"


def _stage_plan(demo: _Demo) -> None:
    """nnU-Net's plan and preprocess, then two folds (half of the training cases each)."""
    demo.run(
        "plan_and_preprocess",
        [
            nnunet_command("nnUNetv2_plan_and_preprocess"),
            *("-d", str(DATASET_ID), "-c", *CONFIGURATIONS),
            *("-np", "1", "-npfp", "1", "--verify_dataset_integrity"),
        ],
    )
    # Two folds instead of nnU-Net's five: half of the training cases each.
    labels = (demo.dataset / "labelsTr").glob("*.nii.gz")
    cases = sorted(p.name[: -len(".nii.gz")] for p in labels)
    half = len(cases) // 2
    splits = [
        {"train": cases[half:], "val": cases[:half]},
        {"train": cases[:half], "val": cases[half:]},
    ]
    splits_file = demo.preprocessed / DATASET_NAME / "splits_final.json"
    splits_file.write_text(json.dumps(splits, indent=2))


def _stage_train(demo: _Demo) -> list[Path]:
    """Train every configuration and fold, read its log; the merged cross-validation folders."""
    config, out, run = demo.config, demo.out, demo.run
    cv_dirs = []
    for configuration in CONFIGURATIONS:
        model_dir = demo.results / DATASET_NAME / f"{config.trainer}__nnUNetPlans__{configuration}"
        for fold in FOLDS:
            fold_dir = model_dir / f"fold_{fold}"
            run(
                f"train/{configuration}/fold_{fold}",
                [
                    nnunet_command("nnUNetv2_train"),
                    *(str(DATASET_ID), configuration, str(fold), "-tr", config.trainer),
                    *("-device", "cpu", "--npz"),
                ],
                **config.training_environment(configuration),
            )
            curves = out / "training_curves"
            curves.mkdir(exist_ok=True)
            run(
                f"log/{configuration}/fold_{fold}",
                _ours(
                    *("log", "-i", str(fold_dir)),
                    *("--json", str(curves / f"{configuration}_fold_{fold}.json")),
                    *("--plot", str(curves / f"{configuration}_fold_{fold}.png")),
                ),
            )
            demo.res.training[f"{configuration}/fold_{fold}"] = json.loads(
                (fold_dir / "nnunet_ext_training.json").read_text()
            )
        demo.res.paths[f"model {configuration}"] = model_dir
        cv_dirs.append(_merge_cross_validation(model_dir, out / "cross_validation" / configuration))
    demo.res.paths["training curves"] = out / "training_curves"
    return cv_dirs


def _stage_predict_holdout(demo: _Demo) -> list[Path]:
    """Predict the labeled hold-out cases with each model's fold average, with probabilities.

    No fold trained on them, and they are predicted as the test cases will be: the second
    estimate of ``tune --holdout`` (:mod:`nnunet_ext.tune.deployed`).
    """
    folders: list[Path] = []
    if not demo.config.num_holdout:
        return folders
    for configuration in CONFIGURATIONS:
        target = demo.out / "holdout" / configuration
        demo.run(
            f"predict/holdout/{configuration}",
            _predict_command(demo, demo.dataset / "imagesVal", target, configuration),
        )
        folders.append(target)
    return folders


def _predict_command(demo: _Demo, images: Path, target: Path, configuration: str) -> list[str]:
    """``nnUNetv2_predict`` of one configuration, all folds, with probabilities, on the CPU."""
    return [
        nnunet_command("nnUNetv2_predict"),
        *("-i", str(images), "-o", str(target), "-d", str(DATASET_ID)),
        *("-c", configuration, "-f", *map(str, FOLDS), "-tr", demo.config.trainer),
        *("--save_probabilities", "-device", "cpu", "-npp", "1", "-nps", "1"),
    ]


def _stage_tune(
    demo: _Demo, cv_dirs: Sequence[Path], holdout_dirs: Sequence[Path]
) -> tuple[Path, Path]:
    """Tune the ensemble on the cross-validation, fuse it, determine postprocessing on it."""
    out, run = demo.out, demo.run
    tuning = out / "tuning"
    tuning.mkdir()
    spec = tuning / "ensemble_spec.json"
    holdout: list[str] = []
    if holdout_dirs:
        holdout = ["--holdout", *map(str, holdout_dirs), "--holdout-reference"]
        holdout.append(str(demo.dataset / "labelsVal"))
    run(
        "tune",
        _ours(
            *("tune", "-i", *map(str, cv_dirs), "-r", str(demo.references), "-o", str(spec)),
            *("--splits", str(demo.references.parent / "splits_final.json")),
            *("--json", str(tuning / "tuning_report.json")),
            *("--figure", str(tuning / "tuning_gains.png")),
            *holdout,
        ),
    )
    demo.res.estimates = _estimates(tuning / "tuning_report.json")
    fused_cv = out / "cross_validation" / "ensemble_tuned"
    run(
        "ensemble/cross_validation",
        _ours("ensemble", "-i", *map(str, cv_dirs), "--spec", str(spec), "-o", str(fused_cv)),
    )
    pp_plan = tuning / "postprocessing_plan.json"
    run(
        "postprocess/determine",
        _ours(
            *("postprocess", "determine", "-i", str(fused_cv)),
            *("-r", str(demo.references), "-o", str(pp_plan)),
        ),
    )
    demo.res.paths["ensemble spec"] = spec
    demo.res.paths["postprocessing plan"] = pp_plan
    return spec, pp_plan


def _estimates(report_path: Path) -> dict[str, dict[str, float]]:
    """The tuner's CV estimate and the hold-out estimate per label name, from tune's report."""
    report = json.loads(report_path.read_text())
    section = report.get("holdout")
    if section is None:
        return {}
    rows = {"CV gain over equal": "cv_gain", "hold-out gain over equal": "holdout_gain"}
    rows["hold-out minus best member"] = "holdout_vs_best_member"
    nan = float("nan")
    return {
        row: {
            item["name"]: nan if item[key] is None else float(item[key])
            for item in section["labels"]
        }
        for row, key in rows.items()
    }


def _stage_predict(demo: _Demo, spec: Path, pp_plan: Path) -> Path:
    """Predict the test images per model and as ensembles (both routes), then postprocess."""
    run, images = demo.run, demo.dataset / "imagesTs"
    predictions = demo.out / "predictions"
    members = []
    for configuration in CONFIGURATIONS:
        target = predictions / configuration
        run(f"predict/{configuration}", _predict_command(demo, images, target, configuration))
        members.append(str(target))
    run(
        "ensemble/equal",
        _ours("ensemble", "-i", *members, "-o", str(predictions / "ensemble_equal")),
    )
    # the tuned ensemble in one pass from the models (no per-model .npz), and the npz route beside
    models = [demo.res.paths[f"model {c}"] for c in CONFIGURATIONS]
    predict_spec = _model_spec(spec, models, spec.parent)
    run(
        "predict/tuned",
        _ours(
            *("predict", "-i", str(images), "-o", str(predictions / "ensemble_tuned")),
            *("--spec", str(predict_spec), "--device", "cpu"),
        ),
    )
    run(
        "ensemble/tuned (npz route)",
        _ours(
            *("ensemble", "-i", *members, "--spec", str(spec), "--qc"),
            *("-o", str(predictions / "ensemble_tuned_npz_route")),
        ),
    )
    demo.res.paths["quality flags"] = predictions / "ensemble_tuned_npz_route" / "qc.csv"
    demo.res.routes = _route_costs(run.timings, [Path(m) for m in members], predictions)
    final = predictions / "ensemble_tuned_postprocessed"
    run(
        "postprocess",
        _ours(
            *("postprocess", "apply", "-i", str(predictions / "ensemble_tuned")),
            *("-o", str(final), "--plan", str(pp_plan)),
        ),
    )
    demo.res.paths["predictions"] = predictions
    # The postprocessed folder needs dataset.json to be evaluated with label names.
    if not (final / "dataset.json").exists():
        shutil.copy2(predictions / "ensemble_tuned" / "dataset.json", final / "dataset.json")
    return final


def _stage_evaluate(demo: _Demo, final: Path) -> None:
    """Dice and HD95 per label of every method on the test cases."""
    predictions = demo.out / "predictions"
    evaluation = demo.out / "evaluation"
    evaluation.mkdir()
    start = time.perf_counter()
    for method, folder in (
        ("2d", predictions / "2d"),
        ("3d_fullres", predictions / "3d_fullres"),
        ("ensemble (equal)", predictions / "ensemble_equal"),
        ("ensemble (tuned)", predictions / "ensemble_tuned"),
        ("tuned + postprocessing", final),
    ):
        demo.res.dice[method], demo.res.hd95[method] = _mean_dice(
            folder, demo.dataset / "labelsTs", evaluation / f"{folder.name}.json"
        )
    demo.res.quality = flagged_test_cases(predictions / "ensemble_tuned_npz_route" / "qc.json")
    demo.res.comparison = compare_with_equal_weights(
        evaluation / "ensemble_equal.json",
        evaluation / f"{final.name}.json",
        output_json=evaluation / "comparison.json",
    )
    demo.run.timings["evaluate"] = time.perf_counter() - start
    demo.res.paths["evaluation"] = evaluation


def _stage_submission(demo: _Demo, final: Path) -> None:
    """Build the submission zip with a preview, and check it."""
    submission = demo.out / "submission"
    submission.mkdir()
    zip_path = submission / "submission.zip"
    images = str(demo.dataset / "imagesTs")
    labels = [str(v) for v in DEFAULT_LABELS.values()]
    demo.run(
        "submission/build",
        _ours(
            *("submission", "build", "-i", str(final), "-o", str(zip_path)),
            *("--images", images, "--labels", *labels),
            *("--preview", str(submission / "preview.png")),
        ),
    )
    demo.run(
        "submission/check",
        _ours(
            *("submission", "check", "-i", str(zip_path)),
            *("--images", images, "--labels", *labels),
        ),
    )
    demo.res.paths["submission zip"] = zip_path
    demo.res.paths["submission preview"] = submission / "preview.png"
