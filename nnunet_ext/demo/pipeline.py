"""The demo pipeline: real nnU-Net commands on a synthetic dataset made in code.

Every step runs nnU-Net's own console scripts in a subprocess (as a user would type them), with
``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` pointing into the demo folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_ext.synthetic import make_raw_dataset

__all__ = ["DemoConfig", "DemoResult", "nnunet_command", "run_demo"]

logger = logging.getLogger(__name__)

MARKER = ".nnunet_ext_demo"
DATASET_ID = 501
DATASET_NAME = "Dataset501_SyntheticHeart"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and training settings of a demo run.

    Attributes:
        num_training: Training cases.
        num_test: Test cases (with references in ``labelsTs``).
        training_env: Our trainer settings, as the environment variables a user would set.
        trainer: ``-tr`` name.
    """

    num_training: int = 8
    num_test: int = 3
    training_env: Mapping[str, str] = field(
        default_factory=lambda: {
            "nnUNet_n_epochs": "12",
            "nnUNet_iters_per_epoch": "8",
            "nnUNet_val_iters_per_epoch": "2",
            "nnUNet_patience": "4",
            "nnUNet_min_delta": "0.002",
            "nnUNet_min_epochs": "4",
        }
    )
    trainer: str = "CustomEpochs"

    @classmethod
    def quick(cls) -> DemoConfig:
        """A smaller run (about a minute of training) used by the test suite."""
        return cls(
            num_training=6,
            num_test=2,
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
    """Where the demo put everything, and what training did."""

    output_dir: Path
    raw_dataset: Path
    preprocessed_dataset: Path
    fold_dir: Path
    predictions: Path
    training_record: dict[str, object]
    timings: dict[str, float] = field(default_factory=dict)


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
                f"--output {output_dir} exists and is not a demo folder; "
                "choose an empty or new folder."
            )
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MARKER).write_text(
        "made by nnunet-ext demo; deleted and rebuilt on the next run\n"
    )


def _run(step: str, args: Sequence[str], env: Mapping[str, str], log_dir: Path) -> float:
    log_file = log_dir / f"{step}.log"
    logger.info("%s: %s", step, " ".join(args))
    start = time.perf_counter()
    with open(log_file, "w") as log:
        result = subprocess.run(
            list(args), env=dict(env), stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text().splitlines()[-15:])
        raise ValueError(
            f"step {step!r} failed (exit {result.returncode}); see {log_file}:\n{tail}"
        )
    return time.perf_counter() - start


def run_demo(output_dir: str | os.PathLike[str], config: DemoConfig | None = None) -> DemoResult:
    """Build a synthetic dataset, then plan, preprocess, train (with early stopping) and predict.

    Args:
        output_dir: Demo folder; rebuilt if it holds an earlier demo, refused if it holds
            anything else.
        config: Sizes and settings; :meth:`DemoConfig.quick` for a short run.

    Returns:
        Paths of all artefacts and the training record.

    Raises:
        FileExistsError: If ``output_dir`` holds something that is not a demo.
        ValueError: If an nnU-Net step fails (the message names its log file).
    """
    config = config or DemoConfig()
    out = Path(output_dir).resolve()
    _prepare_output(out)
    logs = out / "logs"
    logs.mkdir()
    raw, preprocessed, results = (
        out / "nnUNet_raw",
        out / "nnUNet_preprocessed",
        out / "nnUNet_results",
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("nnUNet_") or k == "nnUNet_extTrainer"
    }
    env.update(
        nnUNet_raw=str(raw),
        nnUNet_preprocessed=str(preprocessed),
        nnUNet_results=str(results),
        nnUNet_n_proc_DA="1",
        nnUNet_def_n_proc="1",
    )
    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = make_raw_dataset(
        raw, dataset_id=DATASET_ID, num_training=config.num_training, num_test=config.num_test
    )
    timings["dataset"] = time.perf_counter() - start
    timings["plan_and_preprocess"] = _run(
        "plan_and_preprocess",
        [
            nnunet_command("nnUNetv2_plan_and_preprocess"),
            "-d",
            str(DATASET_ID),
            "-c",
            "3d_fullres",
            "-np",
            "1",
            "--verify_dataset_integrity",
        ],
        env,
        logs,
    )
    # Two folds, half of the training cases each, instead of nnU-Net's five.
    cases = sorted(p.name[: -len(".nii.gz")] for p in (dataset / "labelsTr").glob("*.nii.gz"))
    half = len(cases) // 2
    splits = [
        {"train": cases[half:], "val": cases[:half]},
        {"train": cases[:half], "val": cases[half:]},
    ]
    (preprocessed / DATASET_NAME / "splits_final.json").write_text(json.dumps(splits, indent=2))
    timings["train"] = _run(
        "train",
        [
            nnunet_command("nnUNetv2_train"),
            str(DATASET_ID),
            "3d_fullres",
            "0",
            "-tr",
            config.trainer,
            "-device",
            "cpu",
            "--npz",
        ],
        {**env, **config.training_env},
        logs,
    )
    predictions = out / "predictions" / "3d_fullres"
    timings["predict"] = _run(
        "predict",
        [
            nnunet_command("nnUNetv2_predict"),
            "-i",
            str(dataset / "imagesTs"),
            "-o",
            str(predictions),
            "-d",
            str(DATASET_ID),
            "-c",
            "3d_fullres",
            "-f",
            "0",
            "-tr",
            config.trainer,
            "--save_probabilities",
            "-device",
            "cpu",
            "-npp",
            "1",
            "-nps",
            "1",
        ],
        env,
        logs,
    )
    fold_dir = results / DATASET_NAME / f"{config.trainer}__nnUNetPlans__3d_fullres" / "fold_0"
    record = json.loads((fold_dir / "nnunet_ext_training.json").read_text())
    return DemoResult(
        out, dataset, preprocessed / DATASET_NAME, fold_dir, predictions, record, timings
    )
