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
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_ext.synthetic import DEFAULT_LABELS, make_raw_dataset, nnunet_environment

__all__ = ["DemoConfig", "DemoResult", "best_single_model", "nnunet_command", "run_demo"]

logger = logging.getLogger(__name__)

MARKER = ".nnunet_ext_demo"
DATASET_ID = 501
DATASET_NAME = "Dataset501_SyntheticHeart"
CONFIGURATIONS = ("2d", "3d_fullres")
FOLDS = (0, 1)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and training settings of a demo run.

    Attributes:
        num_training: Training cases (split in two folds).
        num_test: Test cases, with references in ``labelsTs`` (12 by default: enough for a
            per-label mean Dice to mean something; they are cheap to predict).
        shape: Case shape (z, y, x).
        seed: Seed of the synthetic dataset and of the training runs (``nnUNet_seed``, with
            nnU-Net's augmentation in the training process, ``nnUNet_n_proc_DA=0``): a seed's
            models are then the same from run to run on the same machine and software.
        training_env: Our trainer settings, as the environment variables a user would set
            (the seed's two variables are added, see :meth:`training_environment`).
        trainer: ``-tr`` name.
    """

    num_training: int = 10
    num_test: int = 12
    shape: tuple[int, int, int] = (16, 48, 48)
    seed: int = 0
    training_env: Mapping[str, str] = field(
        default_factory=lambda: {
            "nnUNet_n_epochs": "12",
            "nnUNet_iters_per_epoch": "6",
            "nnUNet_val_iters_per_epoch": "2",
            "nnUNet_patience": "4",
            "nnUNet_min_delta": "0.002",
            "nnUNet_min_epochs": "4",
        }
    )
    trainer: str = "CustomEpochs"

    def training_environment(self) -> dict[str, str]:
        """``training_env`` with ``nnUNet_seed`` and ``nnUNet_n_proc_DA=0`` (reproducible runs).

        Examples:
            >>> env = DemoConfig(seed=3).training_environment()
            >>> env["nnUNet_seed"], env["nnUNet_n_proc_DA"], env["nnUNet_n_epochs"]
            ('3', '0', '12')
        """
        return {"nnUNet_seed": str(self.seed), "nnUNet_n_proc_DA": "0", **self.training_env}

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        """A smaller, shorter run for the test suite: every step, little training."""
        return cls(
            num_training=6,
            num_test=2,
            seed=seed,
            training_env={
                "nnUNet_n_epochs": "3",
                "nnUNet_iters_per_epoch": "2",
                "nnUNet_val_iters_per_epoch": "1",
                "nnUNet_patience": "1",
                "nnUNet_min_delta": "1",
            },
        )


@dataclass
class DemoResult:
    """Where the demo put everything, and the numbers it measured.

    Attributes:
        output_dir: The demo folder.
        paths: Artefact name to path (dataset, folds, spec, plan, predictions, zip, ...).
        training: Per ``"<configuration>/fold_<k>"``, our trainer's run record.
        dice: Per method (``"2d"``, ``"3d_fullres"``, ``"ensemble (equal)"``,
            ``"ensemble (tuned)"``, ``"tuned + postprocessing"``), per label name, the mean
            Dice on the test cases (NaN where undefined).
        hd95: The same for HD95 in mm (NaN where undefined: a side empty in every case).
        timings: Seconds per step.
        routes: Seconds and intermediate ``.npz``/``.pkl`` bytes of the tuned test-set ensemble
            by ``nnunet-ext predict --spec`` and by the npz route (nnUNetv2_predict
            --save_probabilities per model + ensemble), and whether their labels are identical.
    """

    output_dir: Path
    paths: dict[str, Path] = field(default_factory=dict)
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    dice: dict[str, dict[str, float]] = field(default_factory=dict)
    hd95: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    routes: dict[str, dict[str, float]] = field(default_factory=dict)


def nnunet_command(name: str) -> str:
    """Path of an nnU-Net console script next to this interpreter (or on PATH).

    Raises:
        FileNotFoundError: If nnU-Net's scripts are not installed.
    """
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; install nnU-Net with 'pip install nnunetv2'.")
    return found


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


class _Runner:
    """Runs the steps, logs each command with its output, and times them."""

    def __init__(self, log_dir: Path, env: Mapping[str, str], on_step: Callable[[str], None]):
        self.log_dir = log_dir
        self.env = dict(env)
        self.timings: dict[str, float] = {}
        self.on_step = on_step

    def __call__(self, step: str, args: Sequence[str], **extra_env: str) -> None:
        self.on_step(step)
        log_file = self.log_dir / f"{len(self.timings):02d}_{step.replace('/', '_')}.log"
        start = time.perf_counter()
        with open(log_file, "w") as log:
            log.write("$ " + " ".join(args) + "\n")
            for key, value in sorted(extra_env.items()):
                log.write(f"  with {key}={value}\n")
            log.flush()
            result = subprocess.run(
                list(args),
                env={**self.env, **extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        self.timings[step] = time.perf_counter() - start
        if result.returncode != 0:
            tail = "\n".join(log_file.read_text().splitlines()[-15:])
            raise ValueError(
                f"demo step {step!r} failed (exit {result.returncode}); see {log_file}:\n{tail}"
            )


def _ours(command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "nnunet_ext", command, *args]


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
    from nnunet_ext.io import read_labels

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
    from nnunet_ext.evaluate import evaluate_folder
    from nnunet_ext.evaluate.report import write_evaluation

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
    )
    demo.run.timings["dataset"] = time.perf_counter() - start
    demo.res.paths["raw dataset"] = demo.dataset
    _stage_plan(demo)
    cv_dirs = _stage_train(demo)
    spec, pp_plan = _stage_tune(demo, cv_dirs)
    final = _stage_predict(demo, spec, pp_plan)
    _stage_evaluate(demo, final)
    _stage_submission(demo, final)
    demo.res.paths["logs"] = out / "logs"
    demo.res.timings = demo.run.timings
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
                **config.training_environment(),
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


def _stage_tune(demo: _Demo, cv_dirs: Sequence[Path]) -> tuple[Path, Path]:
    """Tune the ensemble on the cross-validation, fuse it, determine postprocessing on it."""
    out, run = demo.out, demo.run
    tuning = out / "tuning"
    tuning.mkdir()
    spec = tuning / "ensemble_spec.json"
    run(
        "tune",
        _ours(
            *("tune", "-i", *map(str, cv_dirs), "-r", str(demo.references), "-o", str(spec)),
            *("--splits", str(demo.references.parent / "splits_final.json")),
            *("--json", str(tuning / "tuning_report.json")),
            *("--figure", str(tuning / "tuning_gains.png")),
        ),
    )
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


def _stage_predict(demo: _Demo, spec: Path, pp_plan: Path) -> Path:
    """Predict the test images per model and as ensembles (both routes), then postprocess."""
    run, images = demo.run, demo.dataset / "imagesTs"
    predictions = demo.out / "predictions"
    members = []
    for configuration in CONFIGURATIONS:
        target = predictions / configuration
        run(
            f"predict/{configuration}",
            [
                nnunet_command("nnUNetv2_predict"),
                *("-i", str(images), "-o", str(target), "-d", str(DATASET_ID)),
                *("-c", configuration, "-f", *map(str, FOLDS), "-tr", demo.config.trainer),
                *("--save_probabilities", "-device", "cpu", "-npp", "1", "-nps", "1"),
            ],
        )
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
            *("ensemble", "-i", *members, "--spec", str(spec)),
            *("-o", str(predictions / "ensemble_tuned_npz_route")),
        ),
    )
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


def best_single_model(dice: Mapping[str, Mapping[str, float]]) -> str | None:
    """The configuration with the highest mean foreground Dice on the test cases (first on ties).

    Examples:
        >>> best_single_model({"2d": {"foreground mean": 0.8},
        ...                    "3d_fullres": {"foreground mean": 0.9},
        ...                    "ensemble (equal)": {"foreground mean": 0.95}})
        '3d_fullres'
    """
    candidates = [
        (float(dice[c].get("foreground mean", math.nan)), -i, c)
        for i, c in enumerate(CONFIGURATIONS)
        if c in dice
    ]
    candidates = [item for item in candidates if not math.isnan(item[0])]
    return max(candidates)[2] if candidates else None


def format_summary(result: DemoResult) -> str:
    """Render the per-label Dice table, the training outcomes and where everything is."""
    lines = ["Training (-tr CustomEpochs, early stopping on)"]
    for key, record in result.training.items():
        stop = record.get("stop")
        how = f"stopped early: {stop['message']}" if isinstance(stop, dict) else "ran all epochs"
        lines.append(
            f"  {key:<18} {record['epochs_completed']:>3} of "
            f"{record['settings']['num_epochs']} epochs, best epoch {record['best_epoch']}; {how}"
        )
    if result.routes:
        ours, npz = result.routes["nnunet-ext predict --spec"], result.routes["npz route"]
        lines += [
            "",
            f"Tuned ensemble of the test images: nnunet-ext predict --spec {ours['seconds']:.0f} s,"
            f" no intermediate files; the npz route (nnUNetv2_predict --save_probabilities per "
            f"model + ensemble) {npz['seconds']:.0f} s and {npz['npz_bytes'] / 2**20:.1f} MiB of "
            f".npz/.pkl; labels {'identical' if npz['identical_labels'] else 'DIFFERENT'}.",
        ]
    names = list(next(iter(result.dice.values())))
    rows = dict(result.dice)
    best = best_single_model(result.dice)
    if best is not None:
        # the best single model beside the ensembles: what an ensemble has to beat
        rows = {}
        for method, row in result.dice.items():
            if method not in CONFIGURATIONS and f"best single ({best})" not in rows:
                rows[f"best single ({best})"] = result.dice[best]
            rows[method] = row
    final = "tuned + postprocessing"
    delta_row = f"{final} - best single"
    show_delta = best is not None and final in result.dice
    width = max([len(m) for m in rows] + ([len(delta_row)] if show_delta else [])) + 2

    def cell(value: float) -> str:
        return f"{'NaN' if math.isnan(value) else f'{value:.4f}':>16}"

    lines += ["", "Mean Dice on the test cases (NaN: label absent in reference and prediction)"]
    lines.append(" " * width + "".join(f"{n:>16}" for n in names))
    for method, row in rows.items():
        lines.append(f"{method:<{width}}" + "".join(cell(v) for v in row.values()))
    if show_delta and best is not None:
        deltas = [result.dice[final][n] - result.dice[best][n] for n in names]
        lines.append(
            f"{delta_row:<{width}}"
            + "".join(f"{'NaN' if math.isnan(d) else f'{d:+.4f}':>16}" for d in deltas)
        )
    if result.hd95:
        lines += ["", "Mean HD95 in mm on the test cases (NaN: a side empty in every case)"]
        lines.append(" " * width + "".join(f"{n:>16}" for n in names))
        for method, row in result.hd95.items():
            cells = "".join(f"{'NaN' if math.isnan(v) else f'{v:.2f}':>16}" for v in row.values())
            lines.append(f"{method:<{width}}{cells}")
    lines += ["", "Where everything is"]
    lines += [f"  {name:<22} {path}" for name, path in result.paths.items()]
    total = sum(result.timings.values())
    lines += [
        "",
        f"Total {total / 60:.1f} min; slowest steps: "
        + ", ".join(
            f"{k} {v:.0f} s" for k, v in sorted(result.timings.items(), key=lambda kv: -kv[1])[:4]
        ),
    ]
    return "\n".join(lines)
