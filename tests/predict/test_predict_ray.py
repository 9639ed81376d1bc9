"""``predict --executor ray`` on the session's local Ray: the local outputs, byte for byte, also
when an actor's process is killed mid-case (Ray restarts it and the case is retried)."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from nnunet_workspace import NnunetWorkspace

from nnunet_ext._parallel import Executor
from nnunet_ext.predict import predict_folder
from nnunet_ext.predict.claims import CLAIMS_DIR

from ._helpers import BIN_PYTHON, CASES

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]


def assert_same_files(ours: Path, theirs: Path) -> None:
    names = sorted(p.name for p in ours.iterdir())
    assert names == sorted(p.name for p in theirs.iterdir())
    for name in names:
        assert filecmp.cmp(ours / name, theirs / name, shallow=False), name


def test_predict_on_ray_writes_the_local_files(
    workspace: NnunetWorkspace,
    ensemble_models: dict[str, Path],
    equal_weights_output: Path,
    test_images: Path,
    ray_cluster: str,
    tmp_path: Path,
):
    out = tmp_path / "ray"
    models = [str(ensemble_models["2d"]), str(ensemble_models["3d_fullres"])]
    command = ["predict", "-i", str(test_images), "-o", str(out), "-m", *models]
    options = ["--device", "cpu", "--disable-tta", "--executor", "ray"]
    ray_options = ["--ray-address", ray_cluster, "--ray-cpus-per-worker", "1"]
    result = subprocess.run(
        [str(BIN_PYTHON), "-m", "nnunet_ext", *command, *options, *ray_options],
        env=workspace.env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["executor"] == "ray"
    assert sorted(summary["written"]) == sorted(CASES)
    assert len(summary["workers"]) == 2  # one actor per CPU of the 2-CPU cluster
    assert sum(summary["workers"].values()) == len(CASES)
    assert summary["retries"] == 0
    assert summary["wall_s"] > 0
    assert_same_files(out, equal_weights_output)


def test_a_killed_ray_worker_is_retried_and_the_outputs_stay_identical(
    ensemble_models: dict[str, Path],
    equal_weights_output: Path,
    test_images: Path,
    ray_cluster: str,
    tmp_path: Path,
):
    out = tmp_path / "ray_killed"
    models = [ensemble_models["2d"], ensemble_models["3d_fullres"]]
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["summary"] = predict_folder(
                test_images, out, model_dirs=models, device="cpu", disable_tta=True,
                executor=Executor("ray"),
            )  # fmt: skip
        except BaseException as err:  # reported by the assertions below
            outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    victim = None
    deadline = time.monotonic() + 600
    while victim is None and thread.is_alive() and time.monotonic() < deadline:
        for claim in (out / CLAIMS_DIR).glob("*.claim"):
            try:
                pid = json.loads(claim.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                continue
            if pid != os.getpid():  # an actor's process, midway through a case
                os.kill(pid, signal.SIGKILL)
                victim = (claim.stem, pid)
                break
        time.sleep(0.02)
    thread.join(timeout=900)
    assert victim is not None, "no actor ever held a claim"
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert summary.run["retries"] >= 1
    assert sorted(summary.written) == sorted(CASES)  # each case written once, the victim's too
    assert not any(worker.endswith(f":{victim[1]}") for worker in summary.run["workers"])
    assert_same_files(out, equal_weights_output)
