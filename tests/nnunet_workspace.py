"""Run real nnU-Net commands on tiny synthetic data, as a user would.

Helpers here run the real ``nnUNetv2_*`` commands in subprocesses, with the environment a user
would have: the three nnU-Net paths, small iteration counts, and nothing else of ours.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nnunet_ext.synthetic import nnunet_environment

DATASET_ID = 501
DATASET_NAME = "Dataset501_SyntheticHeart"
BIN = Path(sys.executable).parent
#: The plans of the session's tiny cascade (``cascade_model`` in tests/conftest.py).
CASCADE_PLANS = "nnUNetPlansCascade"
#: Fast settings for real CPU training: 2 iterations per epoch, 1 validation iteration.
FAST = {"nnUNet_iters_per_epoch": "2", "nnUNet_val_iters_per_epoch": "1"}


@dataclass(frozen=True)
class NnunetWorkspace:
    raw: Path
    preprocessed: Path
    results: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = nnunet_environment(self.raw, self.preprocessed, self.results)
        # nnUNet_extTrainer comes from our .pth in the child process; drop any inherited value
        env.pop("nnUNet_extTrainer", None)
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 900, **env: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / args[0]), *args[1:]]
        return subprocess.run(
            command,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def fold_dir(self, trainer: str, fold: int = 0, configuration: str = "3d_fullres") -> Path:
        return (
            self.results
            / DATASET_NAME
            / f"{trainer}__nnUNetPlans__{configuration}"
            / f"fold_{fold}"
        )


def read_record(fold_dir: Path) -> dict:
    return json.loads((fold_dir / "nnunet_ext_training.json").read_text())


def epoch_lines(fold_dir: Path) -> list[str]:
    """All 'Epoch N' lines of all training logs of a fold, in time order."""
    lines = []
    for log in sorted(fold_dir.glob("training_log_*.txt")):
        for line in log.read_text().splitlines():
            message = line.split(": ", 1)[-1].strip()
            if re.fullmatch(r"Epoch \d+", message):
                lines.append(message)
    return lines


def logs_text(fold_dir: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(fold_dir.glob("training_log_*.txt")))


def check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result
