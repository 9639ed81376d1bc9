"""A small, complete set of inputs for every command, and the invariants every run must keep.

:func:`build_inputs` writes, under one folder:

* ``m1/``, ``m2/``: two nnU-Net prediction folders (``CASE.npz`` + ``CASE.pkl`` + label files,
  ``dataset.json``, ``plans.json``) of three cases, as ``nnUNetv2_predict --save_probabilities``
  writes them;
* ``ref/``: reference label files; ``images/``: test images ``CASE_0000.nii.gz``;
* ``spec.json`` (ensemble spec, paths relative to it), ``plan.json`` (postprocessing plan),
  ``sub.zip`` (a valid submission of ``m1``), ``eval_m1.json`` and ``eval_m2.json`` (``evaluate
  --json`` of each, Dice and HD95), ``qc.csv`` (``ensemble --qc`` of ``m1`` and ``m2``);
* ``fold/``: an nnU-Net training log; ``raw/``: an nnU-Net raw dataset for ``doctor``.

:class:`Command` says how to run each command on that folder; :func:`run_command` runs it
in-process and :func:`check_failure` / :func:`check_outcome` assert the invariants.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

import numpy as np

from nnunet_ext._cli import INTERNAL_ERROR_EXIT, INTERNAL_ERROR_MARKER
from nnunet_ext.io.atomic import TEMP_PREFIX
from nnunet_ext.io.locks import LOCK_NAME
from nnunet_ext.synthetic import make_case, make_raw_dataset, write_prediction_folder

CASES = ("case_a", "case_b", "case_c")
SHAPE = (6, 16, 16)
SPACING = (1.0, 1.0, 2.5)  # SimpleITK order (x, y, z)
LABELS = ("0", "1", "2", "3")


def _probabilities(rng: np.random.Generator, labels: np.ndarray, sharp: float) -> np.ndarray:
    onehot = np.stack([(labels == k) for k in range(4)]).astype(np.float32)
    logits = sharp * onehot + rng.normal(0, 1.0, size=onehot.shape).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=0, keepdims=True))
    return (exp / exp.sum(axis=0, keepdims=True)).astype(np.float32)


def _write_image(array: np.ndarray, path: Path) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(path), True)


def _write_log(fold: Path) -> None:
    """An nnU-Net training log of three finished epochs, as ``print_to_log_file`` writes it."""
    fold.mkdir(parents=True)
    now = datetime(2026, 11, 9, 10, 0, 0)
    lines = ["\nThis is the configuration used by this training:\nConfiguration name: 3d_fullres\n"]

    def line(text: str, seconds: float = 0.001) -> None:
        nonlocal now
        now += timedelta(seconds=seconds)
        lines.append(f"{now}: {text} \n")

    line("Desired fold for training: 0")
    for epoch in range(3):
        line("")
        line(f"Epoch {epoch}")
        line("Current learning rate: 0.00998")
        line(f"train_loss {-0.1 - 0.01 * epoch:.4f}", seconds=10)
        line(f"val_loss {-0.05 - 0.01 * epoch:.4f}")
        line(f"Pseudo dice [np.float32({0.5 + epoch / 10:.4f}), np.float32(0.6), np.float32(0.7)]")
        line("Epoch time: 10.0 s")
    (fold / "training_log_2026_11_9_10_00_00.txt").write_text("".join(lines))


def build_inputs(root: Path) -> Path:
    """Write the complete input set under ``root`` (see the module doc) and return ``root``."""
    from nnunet_ext.cli import main

    rng = np.random.default_rng(10)
    root.mkdir(parents=True, exist_ok=True)
    references = {case: make_case(rng, shape=SHAPE)[1] for case in CASES}
    for name, sharp in (("m1", 3.0), ("m2", 2.0)):
        write_prediction_folder(
            root / name,
            {case: _probabilities(rng, ref, sharp) for case, ref in references.items()},
            spacing=SPACING,
        )
    (root / "ref").mkdir()
    (root / "images").mkdir()
    (root / "splits_final.json").write_text(
        json.dumps(
            [
                {"train": list(CASES[1:]), "val": [CASES[0]]},
                {"train": [CASES[0]], "val": list(CASES[1:])},
            ]
        )
    )
    for case, ref in references.items():
        _write_image(ref, root / "ref" / f"{case}.nii.gz")
        _write_image(
            rng.normal(size=SHAPE).astype(np.float32), root / "images" / f"{case}_0000.nii.gz"
        )
    (root / "spec.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "members": [
                    {"path": "m1", "weight": 0.6},
                    {"path": "m2", "weight": 0.4, "label_weights": {"3": 1.0}},
                ],
            },
            indent=2,
        )
    )
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(
            [
                "postprocess",
                "determine",
                "-i",
                str(root / "m1"),
                "-r",
                str(root / "ref"),
                "-o",
                str(root / "plan.json"),
            ]
        )
        assert code == 0, "determine failed on valid inputs"
        code = main(
            [
                "submission",
                "build",
                str(root / "m1"),
                "-o",
                str(root / "sub.zip"),
                "--images",
                str(root / "images"),
            ]
        )
        assert code == 0, "submission build failed on valid inputs"
        for name in ("m1", "m2"):  # the evaluations that compare reads
            code = main(
                [
                    *("evaluate", "-i", str(root / name), "-r", str(root / "ref")),
                    *("--metrics", "dice", "hd95", "--json", str(root / f"eval_{name}.json")),
                ]
            )
            assert code == 0, "evaluate failed on valid inputs"
        code = main(
            ["ensemble", "-i", str(root / "m1"), str(root / "m2"), "-o", str(root / "qc"), "--qc"]
        )
        assert code == 0, "ensemble --qc failed on valid inputs"
    shutil.copyfile(root / "qc" / "qc.csv", root / "qc.csv")
    shutil.rmtree(root / "qc")
    for extra in (
        "sub.manifest.json",
        "sub.report.txt",
        "eval_m1_per_case.csv",
        "eval_m2_per_case.csv",
    ):
        (root / extra).unlink()
    _write_log(root / "fold")
    (root / "preprocessed").mkdir()
    (root / "results").mkdir()
    make_raw_dataset(root / "raw", dataset_id=501, num_training=2, num_test=0, shape=(6, 16, 16))
    return root


# --- the commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """How to run one command on an input set: ``argv(root, out)``; what it writes."""

    name: str
    argv: Callable[[Path, Path], list[str]]
    #: Output folder (relative to ``out``) that must hold one label file per case on success.
    case_folder: str | None = None
    #: Output files (relative to ``out``) that must exist on success.
    files: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    #: Whether the error is reported as findings on stdout (doctor) instead of one error line.
    findings: bool = False


def _p(path: Path) -> str:
    return str(path)


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "ensemble",
            lambda r, o: ["ensemble", "-i", _p(r / "m1"), _p(r / "m2"), "-o", _p(o / "ens")],
            case_folder="ens",
        ),
        Command(
            "ensemble-qc",
            lambda r, o: [
                *("ensemble", "-i", _p(r / "m1"), _p(r / "m2"), "-o", _p(o / "ens")),
                *("--qc", "--qc-maps", "--qc-report", _p(o / "qc.html")),
            ],
            case_folder="ens",
            files=("ens/qc.json", "ens/qc.csv", "qc.html"),
        ),
        Command(
            "ensemble-spec",
            lambda r, o: ["ensemble", "--spec", _p(r / "spec.json"), "-o", _p(o / "ens")],
            case_folder="ens",
        ),
        Command(
            "postprocess",
            lambda r, o: [
                "postprocess",
                "-i",
                _p(r / "m1"),
                "-o",
                _p(o / "pp"),
                "--keep-largest",
                "1",
                "--fill-holes",
                "2",
            ],
            case_folder="pp",
        ),
        Command(
            "postprocess-plan",
            lambda r, o: [
                "postprocess",
                "-i",
                _p(r / "m1"),
                "-o",
                _p(o / "pp"),
                "--plan",
                _p(r / "plan.json"),
            ],
            case_folder="pp",
        ),
        Command(
            "determine",
            lambda r, o: [
                "postprocess",
                "determine",
                "-i",
                _p(r / "m1"),
                "-r",
                _p(r / "ref"),
                "-o",
                _p(o / "plan.json"),
            ],
            files=("plan.json",),
        ),
        Command(
            "evaluate",
            lambda r, o: [
                *("evaluate", "-i", _p(r / "m1"), "-r", _p(r / "ref")),
                *("--json", _p(o / "summary.json")),
            ],
            files=("summary.json", "summary_per_case.csv"),
        ),
        Command(
            "tune",
            lambda r, o: [
                "tune",
                "-i",
                _p(r / "m1"),
                _p(r / "m2"),
                "-r",
                _p(r / "ref"),
                "-o",
                _p(o / "spec.json"),
                "--cv-folds",
                "0",
                "--steps",
                "2",
                "--max-rounds",
                "1",
                "--splits",
                _p(r / "splits_final.json"),
            ],
            files=("spec.json", "spec_report.json", "spec_gains.png"),
        ),
        Command(
            "compare",
            lambda r, o: [
                *("compare", "-i", _p(r / "eval_m1.json"), _p(r / "eval_m2.json")),
                *("--samples", "200", "--json", _p(o / "compare.json")),
                *("--figure", _p(o / "compare.png")),
            ],
            files=("compare.json", "compare.png"),
        ),
        Command(
            "build",
            lambda r, o: [
                "submission",
                "build",
                "-i",
                _p(r / "m1"),
                "-o",
                _p(o / "sub.zip"),
                "--images",
                _p(r / "images"),
            ],
            files=("sub.zip", "sub.manifest.json", "sub.report.txt"),
        ),
        Command(
            "check",
            lambda r, o: [
                "submission",
                "check",
                "-i",
                _p(r / "sub.zip"),
                "--images",
                _p(r / "images"),
                "--labels",
                *LABELS,
            ],
        ),
        Command(
            "check-qc",
            lambda r, o: [
                *("submission", "check", "-i", _p(r / "sub.zip")),
                *("--images", _p(r / "images"), "--qc", _p(r / "qc.csv")),
            ],
        ),
        Command(
            "log",
            lambda r, o: ["log", "-i", _p(r / "fold"), "--json", _p(o / "log.json")],
            files=("log.json",),
        ),
        Command(
            "doctor",
            lambda r, o: ["doctor", "--skip-env", "--dataset", "501", "-j", "1"],
            findings=True,
        ),
    )
}


# --- running and checking -------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def copy_inputs(pristine: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the input set ``pristine`` (``tmp_path/inputs``) and an empty ``tmp_path/out``."""
    root = tmp_path / "inputs"
    shutil.copytree(pristine, root)
    out = tmp_path / "out"
    out.mkdir()
    return root, out


def run_command(command: Command, root: Path, out: Path) -> Result:
    """Run ``command`` in this process, capturing stdout and stderr."""
    from nnunet_ext.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    env = {"NNUNET_EXT_LOG_DIR": str(out.parent / "internal-error-logs"), **command.env}
    if command.findings:
        env.update(
            nnUNet_raw=str(root / "raw"),
            nnUNet_preprocessed=str(root / "preprocessed"),
            nnUNet_results=str(root / "results"),
        )
    with (
        mock.patch.dict(os.environ, env),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            code = main(command.argv(root, out))
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
    return Result(code, stdout.getvalue(), stderr.getvalue())


def tree_hashes(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` (folders by their listing)."""
    hashes = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_file():
            hashes[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            hashes[key] = "dir"
    return hashes


def leftovers(base: Path) -> list[Path]:
    """Temporary files and lock files anywhere under ``base``."""
    return sorted(
        p for p in base.rglob("*") if p.name.startswith(TEMP_PREFIX) or p.name == LOCK_NAME
    )


_ERROR_LINE = re.compile(r"^nnunet-ext[\w -]*: error: ")


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if _ERROR_LINE.match(line)]


def check_common(result: Result, base: Path) -> None:
    """Invariants of every run, good or bad: no traceback, no internal error, no leftovers."""
    text = result.out + result.err
    assert "Traceback" not in text, text
    assert result.code != INTERNAL_ERROR_EXIT, text
    assert INTERNAL_ERROR_MARKER not in result.err, result.err
    assert leftovers(base) == [], leftovers(base)


def check_failure(command: Command, result: Result, base: Path, names: tuple[str, ...]) -> None:
    """A refused input: exit 1, one error line (doctor: a finding) naming it, nothing written."""
    check_common(result, base)
    assert result.code == 1, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    if command.findings:
        reported = [line for line in result.out.splitlines() if line.startswith("ERROR")]
        assert reported, result.out
        assert any(all(n in line for n in names) for line in reported), result.out
        return
    lines = error_lines(result.err)
    assert len(lines) == 1, result.err
    # the message (its first line and any problem lines under it) names the file or case
    message = result.err[result.err.index(lines[0]) :]
    for name in names:
        assert name in message, f"{name!r} not named in: {message}"


def check_outcome(command: Command, result: Result, base: Path, out: Path) -> None:
    """Fuzzing: either a clean refusal, or a success with complete outputs."""
    check_common(result, base)
    assert result.code in (0, 1), result.err
    if result.code == 1:
        if not command.findings:
            assert len(error_lines(result.err)) == 1, result.err
            check_nothing_or_finished_cases(command, result, out)
        return
    if command.case_folder is not None:
        written = sorted(p.name for p in (out / command.case_folder).glob("*.nii.gz"))
        assert written == [f"{c}.nii.gz" for c in CASES], written
    for name in command.files:
        assert (out / name).is_file(), name
        if name.endswith(".json"):
            json.loads((out / name).read_text())


def properties_without(key: str, inner: str | None = None) -> bytes:
    """A ``CASE.pkl`` of our geometry without ``key`` (or without ``key[inner]``)."""
    from nnunet_ext.synthetic import sitk_properties

    props = sitk_properties(SHAPE, SPACING)
    if inner is None:
        props.pop(key)
    else:
        props[key].pop(inner)
    return pickle.dumps(props)


def properties_with(key: str, value: object) -> bytes:
    """A ``CASE.pkl`` of our geometry with ``key`` set to ``value``."""
    from nnunet_ext.synthetic import sitk_properties

    return pickle.dumps({**sitk_properties(SHAPE, SPACING), key: value})


def check_nothing_or_finished_cases(command: Command, result: Result, out: Path) -> None:
    """After a failure nothing is written, or only finished cases that the error line counts.

    A fault found while cases are being written (content checked in the streaming pass) keeps
    the cases finished before it: they are valid, and the error says how to resume or redo.
    """
    written = sorted(out.rglob("*"))
    if not written:
        return
    assert command.case_folder is not None, written
    finished = sorted((out / command.case_folder).glob("*.nii.gz"))
    assert finished, written
    line = error_lines(result.err)[0]
    assert f"{len(finished)} case(s) are finished in" in result.err, line
    assert "Rerun the same command to resume" in result.err
    assert "--overwrite" in result.err
    from nnunet_ext.io import read_labels

    for path in finished:
        assert read_labels(path).array.shape == SHAPE, path
