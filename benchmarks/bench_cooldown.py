"""What the cooldown and per-label checkpoints change on the demo data (issue 16, acceptance 4).

``.venv/bin/python benchmarks/bench_cooldown.py OUT_DIR [--repeats 3] [--cooldown 4]`` builds
the demo's dataset (``DemoConfig()``: 10 training cases of 16x48x48, two folds), preprocesses
``3d_fullres`` and trains fold 0 ``--repeats`` times with the demo's training settings, a stop
forced after 8 epochs (:data:`STOP_AT`), ``nnUNet_cooldown_epochs`` and label checkpoints
(``-tr CustomEpochs_c<K>_l1``). Each run is
validated by nnU-Net (its ``validation/``: the model after the cooldown) and with
``nnunet-ext validate`` for ``checkpoint_before_cooldown.pth`` (the model an early stop without
cooldown ends with; same run, so the comparison is paired) and ``checkpoint_best_RV.pth``.
Prints per-label Dice (mean and standard deviation over the repeats) on the 5 validation cases.
Training is not seeded in nnU-Net, so the repeats differ in initialisation and augmentation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nnunet_ext.demo.config import DATASET_ID, DATASET_NAME, DemoConfig
from nnunet_ext.demo.runner import nnunet_command
from nnunet_ext.synthetic import make_raw_dataset, nnunet_environment

CHECKPOINTS = ("checkpoint_before_cooldown", "checkpoint_final", "checkpoint_best_RV")
#: The demo's 12 epochs never trigger its patience rule (the EMA still rises), so the stop is
#: forced after epoch 7 (patience 1 with an impossible min_delta, never before 8 epochs); with
#: ``--cooldown 4`` the run ends at the demo's 12 epochs.
STOP_AT = {"nnUNet_patience": "1", "nnUNet_min_delta": "1", "nnUNet_min_epochs": "8"}


def _run(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(args)}; see {log}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cooldown", type=int, default=4)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="instead: the demo's own 12-epoch schedule, no forced stop, no cooldown "
        "(-tr CustomEpochs_l1), into OUT_DIR/baseline_<k>",
    )
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = DemoConfig()
    raw, pre = out / "raw", out / "preprocessed"
    env = nnunet_environment(raw, pre, MPLBACKEND="Agg")
    env.pop("nnUNet_extTrainer", None)  # nnU-Net finds our trainers through our .pth
    log = out / "log.txt"
    if not (pre / DATASET_NAME / "splits_final.json").is_file():
        dataset = make_raw_dataset(
            raw,
            dataset_id=DATASET_ID,
            num_training=config.num_training,
            num_test=config.num_test,
            shape=config.shape,
        )
        # nnU-Net's own command written out as a user types it (tests/conftest.py runs it too)
        _run(
            [
                nnunet_command("nnUNetv2_plan_and_preprocess"),
                *f"-d {DATASET_ID} -c 3d_fullres -np 1 -npfp 1".split(),
            ],
            {**env, "nnUNet_results": str(out / "results_0")},
            log,
        )
        cases = sorted(p.name[: -len(".nii.gz")] for p in (dataset / "labelsTr").glob("*.nii.gz"))
        half = len(cases) // 2
        splits = [
            {"train": cases[half:], "val": cases[:half]},
            {"train": cases[:half], "val": cases[half:]},
        ]
        (pre / DATASET_NAME / "splits_final.json").write_text(json.dumps(splits))
    trainer = "CustomEpochs_l1" if args.baseline else f"CustomEpochs_c{args.cooldown}_l1"
    prefix = "baseline" if args.baseline else "results"
    runs = []
    for repeat in range(args.repeats):
        results = out / f"{prefix}_{repeat}"
        forced = {} if args.baseline else STOP_AT
        run_env = {**env, **config.training_env, **forced, "nnUNet_results": str(results)}
        fold = results / DATASET_NAME / f"{trainer}__nnUNetPlans__3d_fullres" / "fold_0"
        start = time.perf_counter()
        if not (fold / "checkpoint_final.pth").is_file():
            _run(
                [
                    nnunet_command("nnUNetv2_train"),
                    str(DATASET_ID),
                    "3d_fullres",
                    "0",
                    "-tr",
                    trainer,
                    "-device",
                    "cpu",
                    "--npz",
                ],
                run_env,
                log,
            )
        record = json.loads((fold / "nnunet_ext_training.json").read_text())
        wanted = [c for c in CHECKPOINTS if (fold / f"{c}.pth").is_file()]
        table = out / f"validate_{prefix}_{repeat}.json"
        _run(
            [
                sys.executable,
                "-m",
                "nnunet_ext.validate",
                "-i",
                str(fold),
                "--checkpoint",
                *wanted,
                "--json",
                str(table),
            ],
            run_env,
            log,
        )
        dice = {
            Path(v["checkpoint"]).stem: v["dice"]
            for v in json.loads(table.read_text())["validations"]
        }
        runs.append(
            {
                "repeat": repeat,
                "seconds": round(time.perf_counter() - start, 1),
                "stop": record["stop"],
                "cooldown": record["cooldown"],
                "epochs_completed": record["epochs_completed"],
                "labels": record["labels"],
                "dice": dice,
            }
        )
        (out / f"{prefix}.json").write_text(json.dumps(runs, indent=2))
        print(f"repeat {repeat}: {json.dumps(runs[-1]['dice'])}", flush=True)
    print(f"\n| checkpoint | label | Dice mean | sd | n | (trainer {trainer}, demo settings)")
    print("|---|---|---|---|---|")
    for checkpoint in CHECKPOINTS:
        values: dict[str, list[float]] = {}
        for run in runs:
            for label, value in run["dice"].get(checkpoint, {}).items():
                values.setdefault(label, []).append(value)
        for label, vals in values.items():
            sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
            print(
                f"| {checkpoint} | {label} | {statistics.mean(vals):.3f} | {sd:.3f} | {len(vals)} |"
            )
    for run in runs:
        cooldown = run["cooldown"]
        print(
            f"repeat {run['repeat']}: {run['epochs_completed']} epochs, stop "
            f"{(run['stop'] or {}).get('reason')} after epoch {(run['stop'] or {}).get('epoch')}, "
            f"cooldown {cooldown['epochs'] if cooldown else 0} epochs, {run['seconds']} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
