"""Run the demo's steps as the commands a user would type: logged, timed, in subprocesses."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["nnunet_command"]


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
