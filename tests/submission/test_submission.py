from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from nnunet_ext.submission import SubmissionError, build_submission, check_submission
from nnunet_ext.submission.builder import remap_labels
from nnunet_ext.submission.checker import expected_cases
from nnunet_ext.submission.cli import main
from tests.submission.conftest import case_labels, write_image

CASES = ["heart_000", "heart_001", "heart_002"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_expected_cases_from_test_images(challenge):
    _, images = challenge
    cases = expected_cases(images)
    assert list(cases) == CASES
    assert cases["heart_001"].name == "heart_001_0000.nii.gz"


def test_acceptance_build_flat_zip_check_accepts_deterministic(challenge, tmp_path, capsys):
    pred, images = challenge
    before = {p.name: _sha(p) for p in pred.iterdir()}
    out = tmp_path / "sub" / "submission.zip"
    out.parent.mkdir()
    assert (
        main(
            [
                "build",
                str(pred),
                "-o",
                str(out),
                "--images",
                str(images),
                "--labels",
                "0",
                "1",
                "2",
                "3",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "3 case(s), all checks passed" in text
    with zipfile.ZipFile(out) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == [f"{c}.nii.gz" for c in CASES]
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    assert all((i.external_attr >> 16) == 0o100644 for i in infos)
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "submission.manifest.json",
        "submission.report.txt",
        "submission.zip",
    ]
    assert main(["check", str(out), "--images", str(images), "--labels", "0", "1", "2", "3"]) == 0
    first = out.read_bytes()
    second = tmp_path / "again.zip"
    build_submission(pred, second, images_dir=images, label_ids=[0, 1, 2, 3])
    assert second.read_bytes() == first
    assert {p.name: _sha(p) for p in pred.iterdir()} == before  # inputs untouched
    manifest = json.loads((out.parent / "submission.manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert manifest["zip_sha256"] == hashlib.sha256(first).hexdigest()
    assert manifest["files"][0]["label_voxels"]["2"] == int((case_labels(0) == 2).sum())
    with zipfile.ZipFile(out) as archive:
        data = archive.read("heart_001.nii.gz")
    assert manifest["files"][1]["sha256"] == hashlib.sha256(data).hexdigest()


def test_zip_content_is_uint8_with_image_geometry(challenge, tmp_path):
    pred, images = challenge
    float_labels = case_labels(1).astype(np.float32)
    float_labels[float_labels == 1] = np.float32(1.0000001)
    write_image(float_labels, pred / "heart_001.nii.gz")
    out = tmp_path / "s.zip"
    report = build_submission(pred, out, images_dir=images)  # labels from dataset.json
    assert report.label_ids == (0, 1, 2, 3)
    with zipfile.ZipFile(out) as archive:
        (tmp_path / "x.nii.gz").write_bytes(archive.read("heart_001.nii.gz"))
    image = sitk.ReadImage(str(tmp_path / "x.nii.gz"))
    assert image.GetPixelID() == sitk.sitkUInt8
    reference = sitk.ReadImage(str(images / "heart_001_0000.nii.gz"))
    assert image.GetSpacing() == reference.GetSpacing()
    assert image.GetOrigin() == reference.GetOrigin()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), case_labels(1))


def test_report_warns_absent_label(challenge, tmp_path, caplog):
    pred, images = challenge
    report = build_submission(pred, tmp_path / "s.zip", images_dir=images, label_ids=[0, 1, 2, 3])
    assert report.warnings == ()  # 1 of 3 is below the default fraction 0.5
    report = build_submission(
        pred, tmp_path / "t.zip", images_dir=images, label_ids=[0, 1, 2, 3], absent_fraction=0.3
    )
    assert report.warnings == ("label 3 is absent in 1 of 3 cases (heart_001)",)
    assert "WARNING: label 3 is absent" in (tmp_path / "t.report.txt").read_text()
    assert "label 3 is absent" in caplog.text


def test_rename_and_remap(challenge, tmp_path):
    pred, images = challenge
    out = tmp_path / "s.zip"
    build_submission(
        pred,
        out,
        images_dir=images,
        label_ids=[0, 1, 2, 5],
        label_map={3: 5, 1: 2, 2: 1},
        name_template="{case}_seg",
    )
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == [f"{c}_seg.nii.gz" for c in CASES]
        (tmp_path / "x.nii.gz").write_bytes(archive.read("heart_000_seg.nii.gz"))
    result = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "x.nii.gz")))
    np.testing.assert_array_equal(result, remap_labels(case_labels(0), {3: 5, 1: 2, 2: 1}))
    check_submission(out, images_dir=images, label_ids=[0, 1, 2, 5], name_template="{case}_seg")
    with pytest.raises(SubmissionError, match="heart_000: missing"):
        check_submission(out, images_dir=images, label_ids=[0, 1, 2, 5])


def test_preview_png(challenge, tmp_path):
    pred, images = challenge
    build_submission(
        pred,
        tmp_path / "s.zip",
        images_dir=images,
        label_ids=[0, 1, 2, 3],
        preview=tmp_path / "preview.png",
    )
    assert (tmp_path / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _break(kind: str, pred: Path, images: Path) -> None:
    if kind == "missing":
        (pred / "heart_001.nii.gz").unlink()
    elif kind == "label":
        labels = case_labels(2)
        labels[0, 0, 0] = 7
        write_image(labels, pred / "heart_002.nii.gz")
    elif kind == "spacing":
        write_image(case_labels(0), pred / "heart_000.nii.gz", spacing=(1.0, 1.25, 3.0))
    elif kind == "unknown":
        write_image(case_labels(0), pred / "stray_case.nii.gz")
    elif kind == "float":
        labels = case_labels(1).astype(np.float32)
        labels[0, 0, 0] = 0.5
        write_image(labels, pred / "heart_001.nii.gz")
    elif kind == "shape":
        write_image(np.zeros((6, 10, 11), np.uint8), pred / "heart_000.nii.gz")


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        pytest.param("missing", r"heart_001: missing", id="missing-case"),
        pytest.param(
            "label", r"heart_002: label value\(s\) \[7\] are not allowed", id="label-outside"
        ),
        pytest.param(
            "spacing",
            r"heart_000: spacing \(1.0, 1.25, 3.0\) must equal the test image's "
            r"\(1.0, 1.25, 2.5\)",
            id="spacing",
        ),
        pytest.param(
            "unknown", r"stray_case: unknown case file stray_case.nii.gz", id="unknown-case"
        ),
        pytest.param("float", r"heart_001: .*must be integer label values .*; got 0.5", id="float"),
        pytest.param("shape", r"heart_000: shape \(6, 10, 11\) must equal", id="shape"),
    ],
)
def test_build_refuses_and_leaves_no_zip(challenge, tmp_path, capsys, kind, match):
    pred, images = challenge
    _break(kind, pred, images)
    out = tmp_path / "out" / "s.zip"
    out.parent.mkdir()
    assert (
        main(
            [
                "build",
                str(pred),
                "-o",
                str(out),
                "--images",
                str(images),
                "--labels",
                "0",
                "1",
                "2",
                "3",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert "no zip was written" in err
    assert list(out.parent.iterdir()) == []


def test_build_lists_every_problem(challenge, tmp_path):
    pred, images = challenge
    for kind in ("missing", "label", "spacing", "unknown"):
        _break(kind, pred, images)
    with pytest.raises(SubmissionError, match="has 4 problem") as info:
        build_submission(pred, tmp_path / "s.zip", images_dir=images, label_ids=[0, 1, 2, 3])
    assert [p.split(":")[0] for p in info.value.problems] == [
        "stray_case",
        "heart_001",
        "heart_000",
        "heart_002",
    ]
    assert not (tmp_path / "s.zip").exists()


def _hand_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def good_files(challenge, tmp_path) -> dict[str, bytes]:
    pred, images = challenge
    build_submission(pred, tmp_path / "good.zip", images_dir=images, label_ids=[0, 1, 2, 3])
    with zipfile.ZipFile(tmp_path / "good.zip") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        pytest.param(
            lambda f: {f"submission/{k}": v for k, v in f.items()},
            r"submission/heart_000.nii.gz: inside a folder; the zip must be flat",
            id="parent-folder",
        ),
        pytest.param(
            lambda f: {**f, "submission/": b""}, r"submission/: folder entry", id="folder-entry"
        ),
        pytest.param(
            lambda f: {**f, "__MACOSX/._heart_000.nii.gz": b"x"}, "macOS metadata", id="macosx"
        ),
        pytest.param(
            lambda f: {**f, ".DS_Store": b"x"}, r"\.DS_Store: macOS metadata", id="ds-store"
        ),
        pytest.param(
            lambda f: {**f, "heart_000.json": b"{}"}, r"heart_000.json: not a label file", id="json"
        ),
        pytest.param(
            lambda f: {**f, "heart_000.npz": b"x"}, r"heart_000.npz: not a label file", id="npz"
        ),
        pytest.param(
            lambda f: {k: v for k, v in f.items() if "001" not in k},
            "heart_001: missing",
            id="missing",
        ),
        pytest.param(
            lambda f: {**f, "extra_9.nii.gz": f["heart_000.nii.gz"]},
            "extra_9: unknown case file",
            id="extra",
        ),
    ],
)
def test_check_rejects_hand_made_zips(good_files, challenge, tmp_path, capsys, mutate, match):
    _, images = challenge
    bad = _hand_zip(tmp_path / "hand.zip", mutate(dict(good_files)))
    assert main(["check", str(bad), "--images", str(images), "--labels", "0", "1", "2", "3"]) == 1
    err = capsys.readouterr().err
    assert re.search(match, err), err


def test_check_reports_duplicate_and_float(good_files, challenge, tmp_path):
    _, images = challenge
    float_path = tmp_path / "f.nii.gz"
    write_image(case_labels(1).astype(np.float32), float_path)
    entries = dict(good_files)
    entries["heart_001.nii.gz"] = float_path.read_bytes()
    bad = tmp_path / "hand.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("heart_000.nii.gz", good_files["heart_000.nii.gz"])
    with pytest.raises(SubmissionError) as info:
        check_submission(bad, images_dir=images, label_ids=[0, 1, 2, 3])
    assert "heart_000: duplicate file heart_000.nii.gz" in info.value.problems
    assert "heart_001: stored as float32; must be uint8" in info.value.problems


def test_argument_errors(challenge, tmp_path, capsys):
    pred, images = challenge
    (tmp_path / "exists.zip").write_bytes(b"")
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        build_submission(pred, tmp_path / "exists.zip", images_dir=images, label_ids=[0, 1])
    with pytest.raises(ValueError, match=r"output_zip must end with \.zip"):
        build_submission(pred, tmp_path / "s.tar", images_dir=images, label_ids=[0, 1])
    with pytest.raises(NotADirectoryError, match="images_dir must be a folder"):
        build_submission(pred, tmp_path / "s.zip", images_dir=tmp_path / "nope", label_ids=[0, 1])
    with pytest.raises(ValueError, match=r"label_ids must be in 0\.\.255"):
        build_submission(pred, tmp_path / "s.zip", images_dir=images, label_ids=[0, 300])
    with pytest.raises(ValueError, match="name_template must contain"):
        build_submission(
            pred, tmp_path / "s.zip", images_dir=images, label_ids=[0, 1], name_template="x"
        )
    (pred / "dataset.json").unlink()
    with pytest.raises(ValueError, match=r"label_ids must be given \(e.g."):
        build_submission(pred, tmp_path / "s.zip", images_dir=images)
    assert main(["check", str(tmp_path / "missing.zip"), "--images", str(images)]) == 1
    assert "error: -i/--input not found" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a zip file"):
        check_submission(tmp_path / "exists.zip", images_dir=images)
    with pytest.raises(SystemExit, match="2"):
        main(["build", str(pred), "-o", "x.zip", "--images", str(images), "--label-map", "1-2"])
    assert "--label-map entries must be OLD:NEW" in capsys.readouterr().err


def test_help_does_not_import_torch():
    code = (
        "import sys, runpy\n"
        "sys.argv = ['x', 'build', '--help']\n"
        "try:\n    runpy.run_module('nnunet_ext.submission', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0\n"
        "import nnunet_ext.submission\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'nnunetv2', 'matplotlib')]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--images" in result.stdout


def test_umbrella_command(challenge, tmp_path):
    from nnunet_ext.cli import main as umbrella

    pred, images = challenge
    out = tmp_path / "u.zip"
    assert (
        umbrella(["submission", "build", str(pred), "-o", str(out), "--images", str(images)]) == 0
    )
    assert (
        umbrella(
            [
                "submission",
                "check",
                str(out),
                "--images",
                str(images),
                "--labels",
                "0",
                "1",
                "2",
                "3",
            ]
        )
        == 0
    )
