"""One writer per output folder; a killed run is taken over, cleaned up and resumed exactly.

These run the real command in subprocesses (a second process, ``kill -9``), on a prediction set
large enough (30 cases) that a run is still busy when the test acts on it.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnunet_ext.io.atomic import TEMP_PREFIX
from nnunet_ext.io.locks import LOCK_NAME
from nnunet_ext.synthetic import write_prediction_folder

from ._data import build_inputs, tree_hashes

pytestmark = pytest.mark.slow

NUM_CASES = 30
SHAPE = (4, 16, 64, 64)


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("concurrency")
    rng = np.random.default_rng(4)
    for name in ("m1", "m2"):
        probabilities = {}
        for i in range(NUM_CASES):
            raw = rng.random(SHAPE, dtype=np.float32) + 0.05
            probabilities[f"case_{i:03d}"] = raw / raw.sum(axis=0, keepdims=True)
        write_prediction_folder(root / name, probabilities, write_segmentations=False)
    return root


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "nnunet_ext", *args]


def _interruptible() -> None:
    """In the child before exec: take Ctrl-C as a terminal delivers it (default action, not
    blocked), whatever signal state the test process passes on (signal masks and ignored
    signals survive exec; libraries loaded by earlier tests in this process may set them)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def _ensemble(inputs: Path, out: Path) -> list[str]:
    return _command("ensemble", "-i", str(inputs / "m1"), str(inputs / "m2"), "-o", str(out))


def _wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


@pytest.fixture(scope="module")
def clean_run(big_inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Digests of an uninterrupted ensemble of ``big_inputs``."""
    out = tmp_path_factory.mktemp("clean") / "out"
    subprocess.run(_ensemble(big_inputs, out), env=_env(), check=True, capture_output=True)
    return _digests(out)


def test_second_run_refuses_at_once_naming_the_first(tmp_path: Path) -> None:
    """A run that writes into a folder (``log --watch`` writes its JSON until training ends)
    holds it: a second command writing the same folder refuses at once, naming pid and host."""
    inputs = build_inputs(tmp_path / "inputs")
    log = inputs / "fold" / "training_log_2026_11_9_10_00_00.txt"
    with log.open("a") as f:  # a training that is running now: log --watch goes on
        f.write(f"{datetime.datetime.now()}: \n{datetime.datetime.now()}: Epoch 3 \n")
    out = tmp_path / "out"
    out.mkdir()
    first = subprocess.Popen(
        _command(
            "log", "-i", str(inputs / "fold"), "--watch", "0.2", "--json", str(out / "log.json")
        ),
        env=_env(),
        preexec_fn=_interruptible,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (out / "log.json").is_file())
        before = tree_hashes(inputs)
        for second in (
            _ensemble(inputs, out),
            _command(
                *("evaluate", "-i", str(inputs / "m1"), "-r", str(inputs / "ref")),
                *("--json", str(out / "s.json")),
            ),
        ):
            start = time.monotonic()
            result = subprocess.run(second, env=_env(), capture_output=True, text=True, timeout=60)
            elapsed = time.monotonic() - start
            assert result.returncode == 1, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert "is being written by another run" in lines[0]
            assert f"pid {first.pid} on host {socket.gethostname()}" in lines[0]
            assert "nnunet-ext log" in lines[0]
            assert elapsed < 30, elapsed  # refused at once: it never waits for the first run
            assert first.poll() is None  # the first run goes on, undisturbed
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "log.json"]
        assert tree_hashes(inputs) == before
    finally:
        first.send_signal(signal.SIGINT)
        try:
            _, err = first.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            first.kill()  # never leak the process into later tests
            _, err = first.communicate()
            raise AssertionError(f"log --watch ignored Ctrl-C for 30 s; stderr: {err}") from None
    assert "Traceback" not in err
    assert not (out / LOCK_NAME).exists()  # released on exit


def test_concurrent_ensembles_never_break_each_other(
    big_inputs: Path, tmp_path: Path, clean_run: dict[str, str]
) -> None:
    """Three ensembles started together on one folder: one writes, the others refuse (or,
    started after it finished, resume and skip every case); never a raw ``[Errno 2]``."""
    out = tmp_path / "out"
    runs = [
        subprocess.Popen(
            _ensemble(big_inputs, out),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    assert any(code == 0 for code, _, _ in results), results
    for code, _, err in results:
        assert "Traceback" not in err
        assert "Errno" not in err
        if code != 0:
            assert code == 1, err
            assert "is being written by another run" in err, err
    assert _digests(out) == clean_run
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_killed_run_is_taken_over_cleaned_and_resumed_exactly(
    big_inputs: Path, tmp_path: Path, clean_run: dict[str, str]
) -> None:
    out = tmp_path / "out"
    victim = subprocess.Popen(
        _ensemble(big_inputs, out),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: out.is_dir() and any(out.glob("case_*.nii.gz")))
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    finished = sorted(out.glob("case_*.nii.gz"))
    assert 0 < len(finished) < NUM_CASES, "the run was not killed mid-way; make it longer"
    assert (out / LOCK_NAME).is_file()  # left behind by the killed process
    # what a kill during a write leaves: a temporary file (also planted, so it is always there)
    stale = out / f"{TEMP_PREFIX}0123456789ab-case_999.nii.gz"
    stale.write_bytes(b"half a file")
    rerun = subprocess.run(
        _ensemble(big_inputs, out), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert not stale.exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert _digests(out) == clean_run  # byte-identical to a run that was never interrupted


@pytest.fixture(scope="module")
def big_submission(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 predicted label files and their test images (16x64x64), for a build that takes time."""
    import SimpleITK as sitk  # noqa: N813

    root = tmp_path_factory.mktemp("submission")
    (root / "pred").mkdir()
    (root / "images").mkdir()
    rng = np.random.default_rng(5)
    for i in range(NUM_CASES):
        labels = rng.integers(0, 4, size=SHAPE[1:], dtype=np.uint8)
        image = rng.normal(size=SHAPE[1:]).astype(np.float32)
        for array, path in (
            (labels, root / "pred" / f"case_{i:03d}.nii.gz"),
            (image, root / "images" / f"case_{i:03d}_0000.nii.gz"),
        ):
            itk = sitk.GetImageFromArray(array)
            itk.SetSpacing((1.0, 1.0, 2.5))
            sitk.WriteImage(itk, str(path), True)
    return root


def _build(inputs: Path, out: Path) -> list[str]:
    return _command(
        "submission", "build", "-i", str(inputs / "pred"), "-o", str(out / "sub.zip"),
        "--images", str(inputs / "images"), "--labels", "0", "1", "2", "3",
    )  # fmt: skip


def test_killed_submission_build_is_cleaned_up_by_the_next_run(
    big_submission: Path, tmp_path: Path
) -> None:
    """``kill -9`` during ``submission build`` leaves its scratch folder (and, killed later, its
    temporary zip) next to the target; the next build into that folder removes them and writes
    the same zip as an uninterrupted build."""
    clean = tmp_path / "clean"
    clean.mkdir()
    subprocess.run(_build(big_submission, clean), env=_env(), check=True, capture_output=True)
    out = tmp_path / "out"
    out.mkdir()
    victim = subprocess.Popen(
        _build(big_submission, out),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: any(out.glob(f"{TEMP_PREFIX}submission-*/*.nii.gz")))
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert list(out.glob(f"{TEMP_PREFIX}submission-*")), "killed too late; make the build longer"
    assert not (out / "sub.zip").exists()
    # a kill while the zip is being written leaves the temporary zip too
    stale_zip = out / f"{TEMP_PREFIX}0123456789ab-sub.zip"
    stale_zip.write_bytes(b"PK half a zip")
    result = subprocess.run(
        _build(big_submission, out), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "sub.manifest.json",
        "sub.report.txt",
        "sub.zip",
    ]
    assert (out / "sub.zip").read_bytes() == (clean / "sub.zip").read_bytes()
