"""Regression tests, through the library functions, for the failures listed in issue 10.

Each damaged input must stop the command with one InputError (a ValueError) naming the file,
before anything is written, and leave the inputs as they were.
"""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from nnunet_ext.ensemble import ensemble_folders
from nnunet_ext.ensemble.plan import plan_ensemble
from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.io import InputError
from nnunet_ext.postprocess import PostprocessingPlan, determine_plan, postprocess_folder
from nnunet_ext.submission import SubmissionError, build_submission, check_submission
from nnunet_ext.synthetic import sitk_properties, write_prediction_folder
from nnunet_ext.tune import load_cv_data

SHAPE = (3, 6, 20, 18)  # 3 classes: background, LV, RV
CASES = ("case_000", "case_001", "case_002")


def _softmax(rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(0.0, 2.0, size=SHAPE).astype(np.float32)
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def _folder(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    return write_prediction_folder(path, {c: _softmax(rng) for c in CASES})


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two prediction folders (probabilities, .pkl, label files, dataset.json, plans.json)."""
    return _folder(tmp_path / "model_a", 1), _folder(tmp_path / "model_b", 2)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _snapshot(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


# --- a truncated .nii.gz (SimpleITK would read it, the missing voxels as 0) -------------------


def test_evaluate_refuses_a_truncated_prediction(folders: tuple[Path, Path]) -> None:
    pred, ref = folders
    _truncate(pred / "case_001.nii.gz")
    with pytest.raises(InputError, match=r"model_a/case_001\.nii\.gz must be a complete gzip"):
        evaluate_folder(pred, ref)


def test_postprocess_refuses_a_truncated_label_file_and_writes_nothing(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, _ = folders
    _truncate(pred / "case_002.nii.gz")
    before = _snapshot(pred)
    out = tmp_path / "pp"
    with pytest.raises(InputError, match=r"case_002\.nii\.gz must be a complete gzip stream"):
        postprocess_folder(pred, out, plan=PostprocessingPlan(keep_largest=(1, 2)))
    assert not list(out.glob("*.nii.gz")) if out.exists() else True
    assert _snapshot(pred) == before


def test_determine_refuses_a_truncated_reference(folders: tuple[Path, Path]) -> None:
    pred, ref = folders
    _truncate(ref / "case_000.nii.gz")
    with pytest.raises(InputError, match=r"model_b/case_000\.nii\.gz must be a complete gzip"):
        determine_plan(pred, ref)


def test_tune_refuses_a_truncated_reference(folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred_a, pred_b = folders
    refs = tmp_path / "refs"
    refs.mkdir()
    for case in CASES:
        shutil.copy(pred_a / f"{case}.nii.gz", refs / f"{case}.nii.gz")
    _truncate(refs / "case_001.nii.gz")
    with pytest.raises(InputError, match=r"refs/case_001\.nii\.gz must be a complete gzip"):
        load_cv_data([pred_a, pred_b], refs)


def _images(folder: Path, tmp_path: Path) -> Path:
    images = tmp_path / "imagesTs"
    images.mkdir()
    for case in CASES:
        labels = sitk.ReadImage(str(folder / f"{case}.nii.gz"))
        image = sitk.Cast(labels, sitk.sitkFloat32)
        sitk.WriteImage(image, str(images / f"{case}_0000.nii.gz"), True)
    return images


def test_submission_build_never_zips_a_truncated_file(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, _ = folders
    images = _images(pred, tmp_path)
    build_submission(pred, tmp_path / "ok.zip", images_dir=images)  # intact: builds
    _truncate(pred / "case_001.nii.gz")
    with pytest.raises(InputError, match=r"model_a/case_001\.nii\.gz must be a complete gzip"):
        build_submission(pred, tmp_path / "s.zip", images_dir=images)
    assert not (tmp_path / "s.zip").exists()


def test_submission_check_refuses_a_truncated_member(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, _ = folders
    images = _images(pred, tmp_path)
    path = tmp_path / "hand.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for case in CASES:
            data = (pred / f"{case}.nii.gz").read_bytes()
            archive.writestr(f"{case}.nii.gz", data if case != "case_002" else data[:-40])
    with pytest.raises(SubmissionError, match=r"case_002: .*must be a complete gzip stream"):
        check_submission(path, images_dir=images)


def test_submission_check_bad_crc_member_is_one_line(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, _ = folders
    images = _images(pred, tmp_path)
    report = build_submission(pred, tmp_path / "s.zip", images_dir=images)
    data = bytearray(report.zip_path.read_bytes())
    with zipfile.ZipFile(report.zip_path) as archive:
        info = archive.getinfo("case_001.nii.gz")
    start = info.header_offset + 30 + len(info.filename)
    data[start + info.compress_size // 2] ^= 0x01
    report.zip_path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"s\.zip must be a zip whose members pass their CRC-32"):
        check_submission(report.zip_path, images_dir=images)


# --- probabilities ------------------------------------------------------------------------------


def test_ensemble_refuses_negative_probabilities_and_writes_nothing(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = folders
    p = np.load(b / "case_001.npz")["probabilities"]
    p[0, 1, 2, 3] = -0.5
    np.savez_compressed(b / "case_001.npz", probabilities=p)
    out = tmp_path / "fused"
    with pytest.raises(
        InputError,
        match=r"model_b/case_001\.npz must be probabilities: .*got -0\.5 \(case 'case_001'\)",
    ):
        ensemble_folders([a, b], out)
    assert not (out / "case_001.nii.gz").exists()


def test_ensemble_refuses_a_crafted_npz_header(folders: tuple[Path, Path], tmp_path: Path) -> None:
    import io

    a, b = folders
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), dtype=np.float32))
    header["shape"] = (3, 4096, 4096, 4096)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(b / "case_000.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("probabilities.npy", buffer.getvalue() + bytes(100))
    with pytest.raises(InputError, match=r"model_b/case_000\.npz must be a complete nnU-Net"):
        plan_ensemble([a, b], tmp_path / "fused")


def test_ensemble_pkl_without_sitk_stuff(folders: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = folders
    props = sitk_properties(SHAPE[1:])
    del props["sitk_stuff"]
    (a / "case_002.pkl").write_bytes(pickle.dumps(props))
    with pytest.raises(
        InputError, match=r"model_a/case_002\.pkl: sitk_stuff must be present .*SimpleITKIO"
    ):
        plan_ensemble([a, b], tmp_path / "fused")


# --- dataset.json, labels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        pytest.param(
            lambda d: [d], r"dataset\.json must be a JSON object.*; got a list", id="list"
        ),
        pytest.param(
            lambda d: {**d, "file_ending": 7},
            r"dataset\.json: file_ending must be a string",
            id="file-ending",
        ),
        pytest.param(
            lambda d: {**d, "labels": {**d["labels"], "LV": "x"}},
            r"dataset\.json: labels\.LV must be an integer >= 0 .*got the string 'x'",
            id="label-x",
        ),
    ],
)
def test_bad_dataset_json_in_every_library_entry(
    folders: tuple[Path, Path], tmp_path: Path, edit, match: str
) -> None:
    a, b = folders
    data = json.loads((a / "dataset.json").read_text())
    (a / "dataset.json").write_text(json.dumps(edit(data)))
    with pytest.raises(InputError, match=match):
        plan_ensemble([a, b], tmp_path / "fused")
    with pytest.raises(InputError, match=match):
        evaluate_folder(a, b)
    with pytest.raises(InputError, match=match):
        postprocess_folder(a, tmp_path / "pp", plan=PostprocessingPlan(keep_largest=(1,)))
    with pytest.raises(InputError, match=match):
        determine_plan(a, b)
    with pytest.raises(InputError, match=match):
        load_cv_data([a, b], b, dataset_json=a / "dataset.json")


def test_labels_that_dataset_json_does_not_define(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = folders
    defined = r"\(1 \(myocardium\), 2 \(LV\)\); got '?9'?\."
    with pytest.raises(
        InputError, match=rf"labels must be a label defined in .*dataset\.json {defined}"
    ):
        evaluate_folder(a, b, labels=["9"])
    with pytest.raises(
        InputError, match=rf"labels must be a label defined in .*dataset\.json {defined}"
    ):
        determine_plan(a, b, label_ids=[9])
    with pytest.raises(
        InputError,
        match=r"plan: keep_largest must be labels defined in .*\(1 \(myocardium\), 2 \(LV\)\); "
        r"got label 9",
    ):
        postprocess_folder(a, tmp_path / "pp", plan=PostprocessingPlan(keep_largest=(9,)))
    images = _images(a, tmp_path)
    with pytest.raises(
        InputError,
        match=r"label_ids must be label values that .*dataset\.json defines \(\[0, 1, 2\]\); got 9",
    ):
        build_submission(a, tmp_path / "s.zip", images_dir=images, label_ids=[0, 1, 9])
    result = evaluate_folder(a, b, labels=["LV", "1"])
    assert [s.label for s in result.labels] == [2, 1]


def test_input_error_from_a_spawn_worker_reaches_the_caller_intact(
    folders: tuple[Path, Path],
) -> None:
    import pickle

    error = InputError("f.nii.gz", "a thing", "another", key="a.b", fix="Fix it.")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.key, copy.fix) == (InputError, str(error), "a.b", "Fix it.")
    pred, ref = folders
    _truncate(pred / "case_001.nii.gz")
    with pytest.raises(InputError, match=r"model_a/case_001\.nii\.gz must be a complete gzip"):
        evaluate_folder(pred, ref, num_workers=2)
