"""The Ray executor: same results, outputs and errors as the local one; Ray only when asked.

These tests run on the session's local Ray (``ray_cluster``: 2 CPUs, started by the tests).
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from evaluate._data import make_folders as make_label_folders
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext._parallel import Executor, executor_from_args, map_cases
from nnunet_ext.cli import main
from nnunet_ext.synthetic import write_prediction_folder

RAY = Executor("ray")

pytestmark = pytest.mark.usefixtures("ray_cluster")


def assert_same_folders(ours: Path, theirs: Path) -> None:
    """Same file names; same bytes (``.npz``: same arrays, zip entries carry a time stamp)."""
    names = sorted(p.name for p in ours.iterdir())
    assert names == sorted(p.name for p in theirs.iterdir())
    for name in names:
        if name.endswith(".npz"):
            with np.load(ours / name) as a, np.load(theirs / name) as b:
                assert sorted(a.files) == sorted(b.files)
                for key in a.files:
                    assert a[key].tobytes() == b[key].tobytes(), (name, key)
        else:
            assert filecmp.cmp(ours / name, theirs / name, shallow=False), name


@settings(max_examples=5, deadline=None)
@given(st.lists(st.integers(-1000, 1000), max_size=12))
def test_map_cases_on_ray_equals_local(items):
    assert map_cases(abs, items, executor=RAY) == map_cases(abs, items, num_workers=2)


def test_a_failing_case_raises_its_own_one_line_error():
    with pytest.raises(ValueError, match=r"^invalid literal for int\(\) with base 10: 'x'$"):
        map_cases(int, ["1", "x", "3"], executor=RAY)


def test_executor_arguments_are_checked():
    with pytest.raises(ValueError, match=r"^ray_address auto is for the Ray executor only"):
        Executor("local", "auto")
    args = type("Args", (), {"executor": "ray", "ray_address": "auto"})()
    assert executor_from_args(args) == Executor("ray", "auto")


def test_ensemble_on_ray_writes_the_same_files_as_local(tmp_path, caplog):
    rng = np.random.default_rng(7)
    members = []
    for m in range(2):
        probabilities = {}
        for case in ("case_000", "case_001", "case_002"):
            logits = rng.normal(size=(3, 4, 10, 9)).astype(np.float32)
            e = np.exp(logits - logits.max(axis=0))
            probabilities[case] = (e / e.sum(axis=0)).astype(np.float32)
        members.append(str(write_prediction_folder(tmp_path / f"member_{m}", probabilities)))
    outputs = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        args = ["ensemble", "-i", *members, "-o", str(out), "--weights", "1", "2"]
        assert main([*args, "--save-probabilities", "--executor", executor, "-v"]) == 0
        outputs[executor] = out
    assert re.search(r"ensemble: 3 case\(s\) on [12] Ray worker", caplog.text)
    assert_same_folders(outputs["ray"], outputs["local"])


def test_postprocess_and_evaluate_on_ray_write_the_same_files_as_local(tmp_path, caplog):
    pred, ref = make_label_folders(tmp_path / "data", num_cases=4)
    for executor in ("local", "ray"):
        out = tmp_path / f"post_{executor}"
        flags = ["--executor", executor, "-v"]
        steps = ["--fill-holes", "1", "--min-size", "1:3"]
        assert main(["postprocess", "-i", str(pred), "-o", str(out), *steps, *flags]) == 0
        (tmp_path / f"eval_{executor}").mkdir()
        report = tmp_path / f"eval_{executor}" / "summary.json"
        assert (
            main(["evaluate", "-i", str(pred), "-r", str(ref), "--json", str(report), *flags]) == 0
        )
    log = caplog.text
    for command in ("postprocess", "evaluate"):
        assert re.search(rf"{command}: 4 case\(s\) on [12] Ray worker", log), command
    assert_same_folders(tmp_path / "post_ray", tmp_path / "post_local")
    assert_same_folders(tmp_path / "eval_ray", tmp_path / "eval_local")


def _run_without_ray(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which ``import ray`` fails, as without the extra."""
    shim = tmp_path / "no_ray"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None\n")
    path = os.pathsep.join([str(shim), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path, "nnUNet_raw": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )


@pytest.mark.parametrize(
    "command",
    [
        ["predict", "-i", "images", "-o", "out", "-m", "model"],
        ["ensemble", "-i", "a", "b", "-o", "out"],
        ["postprocess", "-i", "a", "-o", "out", "--fill-holes", "1"],
        ["evaluate", "-i", "a", "-r", "b"],
        ["doctor", "--skip-env"],
    ],
)
def test_without_ray_executor_ray_says_how_to_install_it(tmp_path, command):
    code = (
        "import sys\nfrom nnunet_ext.cli import main\n"
        f"sys.exit(main({[*command, '--executor', 'ray']!r}))"
    )
    result = _run_without_ray(tmp_path, code)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"nnunet-ext {command[0]}: error: --executor ray needs Ray, which is not installed; "
        'install it with: pip install "nnunet_ext[ray]"'
    ]
    assert not (tmp_path / "out").exists()


def test_local_runs_never_import_ray(tmp_path):
    pred, ref = make_label_folders(tmp_path, num_cases=2)
    code = (
        "import sys\nfrom nnunet_ext.cli import main\n"
        f"assert main(['evaluate', '-i', {str(pred)!r}, '-r', {str(ref)!r}, '-j', '2']) == 0\n"
        f"assert main(['postprocess', '-i', {str(pred)!r}, '-o', 'o', '--fill-holes', '1']) == 0\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"')) == []


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(-1000, 1000), max_size=12), st.integers(1, 4))
def test_map_cases_on_threads_equals_sequential(items, num_workers):
    """``threads`` (ensemble's local workers) returns the same, in input order."""
    assert map_cases(abs, items, num_workers=num_workers, threads=True) == [abs(i) for i in items]


def test_map_cases_on_threads_raises_the_first_error_and_cancels_the_rest():
    started = []

    def convert(text: str) -> int:
        started.append(text)
        time.sleep(0.005)
        return int(text)

    with pytest.raises(ValueError, match=r"^invalid literal for int\(\) with base 10: 'x'$"):
        map_cases(convert, ["x", *map(str, range(200))], num_workers=2, threads=True)
    assert len(started) < 201  # the cases not yet started were cancelled
