"""The output guard on every command: existing files, inputs, suffixes, the last-resort handler.

Every path a command writes (main output, reports, figures, CSV, JSON, plots, previews) goes
through ``nnunet_ext.io.outputs.guard_outputs``: an existing file is refused without
``--overwrite``, no output may be one of the inputs (or a data file in an input folder) even
with ``--overwrite``, and a wrong suffix is refused; in each case nothing is written and the
inputs stay byte-identical.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from nnunet_ext._cli import INTERNAL_ERROR_EXIT
from nnunet_ext.io.locks import LOCK_NAME, OutputLock, OutputLockedError

from ._data import (
    COMMANDS,
    Command,
    build_inputs,
    copy_inputs,
    error_lines,
    leftovers,
    run_command,
    tree_hashes,
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_inputs(tmp_path_factory.mktemp("outputs") / "inputs")


def _with(command: str, *extra: str | Path) -> Command:
    base = COMMANDS[command]
    return Command(
        f"{command}+",
        lambda r, o: [*base.argv(r, o), *(str(e).format(root=r, out=o) for e in extra)],
        findings=base.findings,
    )


# (command, flag, file name in out/ with a valid suffix): every file output of every command
FILE_OUTPUTS = [
    ("determine", "-o", "plan.json"),
    ("evaluate", "--json", "summary.json"),
    ("evaluate", "--csv", "per_case.csv"),
    ("tune", "-o", "spec.json"),
    ("tune", "--json", "report.json"),
    ("tune", "--figure", "gains.png"),
    ("build", "-o", "sub.zip"),
    ("build", "manifest", "sub.manifest.json"),
    ("build", "report", "sub.report.txt"),
    ("build", "--preview", "preview.png"),
    ("log", "--json", "log.json"),
    ("log", "--plot", "plot.png"),
    ("doctor", "--json", "doctor.json"),
    ("compare", "--json", "compare.json"),
    ("compare", "--figure", "compare.png"),
    ("ensemble-qc", "--qc-report", "qc.html"),
]


def _flag_args(flag: str, name: str) -> tuple[str, ...]:
    if flag in ("manifest", "report"):  # written beside -o; the default -o is sub.zip
        return ()
    return (flag, f"{{out}}/{name}")


@pytest.mark.parametrize(("command", "flag", "name"), FILE_OUTPUTS)
def test_existing_output_is_refused_without_overwrite(
    pristine: Path, tmp_path: Path, command: str, flag: str, name: str
) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    if command == "evaluate" and flag == "--csv":
        extra: tuple[str, ...] = ("--csv", "{out}/per_case.csv")
    else:
        extra = _flag_args(flag, name)
    existing = out / name
    existing.write_bytes(b"my notes\n")
    before = tree_hashes(root)
    result = run_command(_with(command, *extra), root, out)
    assert result.code == 1, result.out + result.err
    (line,) = error_lines(result.err)
    assert f"{existing} already exists; pass --overwrite" in line
    assert existing.read_bytes() == b"my notes\n"
    assert sorted(out.iterdir()) == [existing]
    assert tree_hashes(root) == before
    assert leftovers(tmp_path) == []
    # with --overwrite the same command replaces it
    result = run_command(_with(command, *extra, "--overwrite"), root, out)
    assert result.code == 0, result.out + result.err
    assert existing.read_bytes() != b"my notes\n"
    assert tree_hashes(root) == before
    assert leftovers(tmp_path) == []


# (command, extra arguments, what the message says): refused even with --overwrite
INPUT_AS_OUTPUT = [
    ("tune", ("--json", "{root}/ref/case_a.nii.gz"), "--json must be a .json file"),
    ("tune", ("--json", "{root}/m1/dataset.json"), "is a data file inside the input folder"),
    ("tune", ("--figure", "{root}/m1/case_a.nii.gz"), "--figure must be a .png file"),
    ("tune", ("-o", "{root}/m2/plans.json"), "is a data file inside the input folder"),
    ("tune", ("-o", "{root}/spec.json", "--json", "{root}/spec.json"), "name the same file"),
    ("evaluate", ("--json", "{root}/m1/dataset.json"), "is a data file inside the input folder"),
    ("evaluate", ("--json", "{out}/s.json", "--csv", "{root}/ref/case_a.nii.gz"), "--csv must be"),
    ("evaluate", ("--dataset-json", "{root}/m1/dataset.json", "--json", "{root}/m1/dataset.json"),
     "is one of the inputs"),
    ("determine", ("-o", "{root}/m1/dataset.json"), "is a data file inside the input folder"),
    ("determine", ("-o", "{root}/ref/case_b.nii.gz"), "-o/--output must be a .json file"),
    ("build", ("--preview", "{root}/notes.txt"), "--preview must be a .png file"),
    ("build", ("--preview", "{root}/images/case_a_0000.nii.gz"), "--preview must be a .png"),
    ("build", ("-o", "{root}/m1/case_a.nii.gz"), "-o/--output must be a .zip file"),
    ("ensemble", ("-o", "{root}/m1"), "is one of the inputs"),
    ("ensemble", ("-o", "{root}/spec.json"), "must be a folder"),
    ("ensemble-qc", ("--qc-report", "{root}/m1/case_a.nii.gz"), "--qc-report must be a .html"),
    ("ensemble-qc", ("-o", "{root}/m1"), "is one of the inputs"),
    ("ensemble-spec", ("-o", "{root}/m2"), "must differ from every input folder"),
    ("postprocess", ("-o", "{root}/m1"), "is one of the inputs"),
    ("postprocess-plan", ("-o", "{root}/plan.json"), "is one of the inputs"),
    ("postprocess", ("-o", "{root}/spec.json"), "must be a folder"),
    ("log", ("--json", "{root}/fold/training_log_2026_11_9_10_00_00.txt"), "--json must be"),
    ("log", ("--plot", "{root}/fold/training_log_2026_11_9_10_00_00.txt"), "--plot must be"),
    ("log", ("--json", "{root}/fold"), "is one of the inputs"),
    ("doctor", ("--json", "{root}/raw/Dataset501_SyntheticHeart/dataset.json"), "input folder"),
    ("compare", ("--json", "{root}/eval_m1.json"), "is one of the inputs"),
    ("compare", ("--figure", "{root}/eval_m2.json"), "is one of the inputs"),
    ("compare", ("--figure", "{root}/notes.txt"), "--figure must be a .png file"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    INPUT_AS_OUTPUT,
    ids=[f"{c}-{'-'.join(Path(e).name for e in x)}" for c, x, _ in INPUT_AS_OUTPUT],
)
def test_an_input_is_never_an_output(
    pristine: Path, tmp_path: Path, command: str, extra: tuple[str, ...], message: str
) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    (root / "notes.txt").write_text("my notes\n")
    before = tree_hashes(root)
    result = run_command(_with(command, *extra, "--overwrite"), root, out)
    assert result.code == 1, result.out + result.err
    (line,) = error_lines(result.err)
    assert message in line
    assert "Traceback" not in result.err
    assert tree_hashes(root) == before
    assert list(out.iterdir()) == []
    assert leftovers(tmp_path) == []


# --- the lock -------------------------------------------------------------------------------


def test_lock_of_a_live_process_is_refused_naming_it(tmp_path: Path) -> None:
    with OutputLock(tmp_path, "nnunet-ext ensemble"):
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()} on host"):
            OutputLock(tmp_path, "again").acquire()
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_left_by_a_dead_process_on_this_host_is_taken_over(tmp_path: Path) -> None:
    record = {"pid": 2**22 + 12345, "host": socket.gethostname(), "command": "killed"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    with OutputLock(tmp_path, "new") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_lock_of_another_host_is_refused(tmp_path: Path) -> None:
    record = {"pid": 77, "host": "elsewhere.example", "command": "nnunet-ext tune"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    with pytest.raises(OutputLockedError, match=r"on another host \(pid 77 on host elsewhere"):
        OutputLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).is_file()  # not ours to remove


def test_failed_run_removes_the_folder_it_created(pristine: Path, tmp_path: Path) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    (root / "m1" / "plans.json").write_text("[]")
    nested = out / "a" / "b"
    result = run_command(_with("ensemble", "-o", str(nested)), root, out)
    assert result.code == 1
    assert list(out.iterdir()) == []  # a/ and a/b/ were created by the run: both removed


def test_failed_run_keeps_a_folder_that_existed(pristine: Path, tmp_path: Path) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    (out / "ens").mkdir()
    (out / "ens" / "mine.txt").write_text("x")
    (root / "m1" / "plans.json").write_text("[]")
    result = run_command(COMMANDS["ensemble"], root, out)
    assert result.code == 1
    assert sorted(p.name for p in (out / "ens").iterdir()) == ["mine.txt"]


# --- the last-resort handler ----------------------------------------------------------------


@pytest.mark.parametrize("error", [TypeError("bad operand"), KeyError("sitk_stuff")])
def test_unexpected_exception_is_one_line_and_a_log_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    error: Exception,
) -> None:  # fmt: skip
    import nnunet_ext.evaluate.cli as evaluate_cli
    from nnunet_ext.cli import main

    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("nnunet_ext.evaluate.folders.evaluate_folder", broken)
    monkeypatch.setenv("NNUNET_EXT_LOG_DIR", str(tmp_path / "logs"))
    assert evaluate_cli.DESCRIPTION
    code = main(["evaluate", "-i", str(tmp_path), "-r", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == INTERNAL_ERROR_EXIT
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nnunet-ext evaluate: internal error (")
    assert "please report" in lines[0]
    assert "Traceback" not in err
    (log,) = (tmp_path / "logs").iterdir()
    assert str(log) in lines[0]
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    assert "def broken" in text or "broken" in text


def test_library_cleanup_removes_only_dead_locks(tmp_path: Path) -> None:
    """The Python API (no command-line lock) removes a lock file left by a killed run, never a
    held one or another host's."""
    from nnunet_ext.io import remove_stale_temporaries

    dead = {"pid": 2**22 + 12345, "host": socket.gethostname(), "command": "killed"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(dead))
    remove_stale_temporaries(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()
    with OutputLock(tmp_path, "live"):
        remove_stale_temporaries(tmp_path)
        assert (tmp_path / LOCK_NAME).is_file()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 5, "host": "elsewhere.example"}))
    remove_stale_temporaries(tmp_path)
    assert (tmp_path / LOCK_NAME).is_file()


def test_failure_after_finished_cases_keeps_them_and_says_how_to_resume(
    pristine: Path, tmp_path: Path
) -> None:
    import numpy as np

    root, out = copy_inputs(pristine, tmp_path)
    bad = root / "m1" / "case_c.npz"
    good = bad.read_bytes()
    with np.load(bad) as data:
        probabilities = data["probabilities"].copy()
    probabilities[0, 0, 0, 0] = np.nan
    np.savez_compressed(bad, probabilities=probabilities)
    result = run_command(COMMANDS["ensemble"], root, out)
    assert result.code == 1
    (line,) = error_lines(result.err)
    assert "case_c.npz" in line
    assert f"2 case(s) are finished in '{out / 'ens'}': they are valid" in line
    assert "Rerun the same command to resume, or add --overwrite to redo them." in line
    assert sorted(p.name for p in (out / "ens").glob("*.nii.gz")) == [
        "case_a.nii.gz",
        "case_b.nii.gz",
    ]
    assert leftovers(tmp_path) == []
    bad.write_bytes(good)  # fixed: the rerun resumes, skipping the finished cases
    result = run_command(COMMANDS["ensemble"], root, out)
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["skipped"] == ["case_a", "case_b"]
    assert summary["written"] == ["case_c"]
