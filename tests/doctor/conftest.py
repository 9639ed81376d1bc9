"""nnU-Net folder trees with planted defects, made in code."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from nnunet_ext.synthetic import make_raw_dataset, sitk_properties


def _write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 2.5))
    sitk.WriteImage(image, str(path), True)


def make_clean_tree(root: Path) -> SimpleNamespace:
    """nnUNet_raw / _preprocessed / _results with one small, healthy dataset (ID 501)."""
    raw, pre, res = root / "raw", root / "preprocessed", root / "results"
    for folder in (raw, pre, res):
        folder.mkdir(parents=True)
    ds = make_raw_dataset(raw, num_training=4, num_test=1, shape=(6, 16, 16))
    conf = pre / ds.name / "nnUNetPlans_3d_fullres"
    conf.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for case in ("heart_000", "heart_001"):
        np.savez_compressed(
            conf / f"{case}.npz",
            data=rng.random((1, 6, 16, 16), dtype=np.float32),
            seg=np.zeros((1, 6, 16, 16), dtype=np.int8),
        )
        with open(conf / f"{case}.pkl", "wb") as f:
            pickle.dump(sitk_properties((6, 16, 16)), f)
    import blosc2

    blosc2.asarray(
        rng.random((1, 6, 16, 16), dtype=np.float32), urlpath=str(conf / "heart_002.b2nd"), mode="w"
    )
    (pre / ds.name / "dataset.json").write_text((ds / "dataset.json").read_text())
    fold = res / ds.name / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"
    (fold / "validation").mkdir(parents=True)
    for case in ("heart_000", "heart_001"):
        np.savez_compressed(
            fold / "validation" / f"{case}.npz",
            probabilities=rng.random((4, 6, 16, 16), dtype=np.float32),
        )
        with open(fold / "validation" / f"{case}.pkl", "wb") as f:
            pickle.dump(sitk_properties((6, 16, 16)), f)
    with zipfile.ZipFile(fold / "checkpoint_final.pth", "w") as z:  # torch's zip format
        z.writestr("archive/data.pkl", pickle.dumps({"trainer_name": "nnUNetTrainer"}))
        z.writestr("archive/data/0", rng.random(4096).tobytes())
    # postprocessing.pkl references functions: valid, must not be flagged (nor executed)
    (res / ds.name / "postprocessing.pkl").write_bytes(pickle.dumps(([os.path.join], [{}])))
    return SimpleNamespace(raw=raw, preprocessed=pre, results=res, dataset=ds, conf=conf, fold=fold)


def plant_defects(tree: SimpleNamespace) -> dict[str, Path]:
    """Plant one of each defect; return name -> path."""
    ds, fold = tree.dataset, tree.fold
    planted = {}
    planted["appledouble"] = ds / "imagesTr" / "._heart_000_0000.nii.gz"
    planted["appledouble"].write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)
    planted["ds_store_raw"] = ds / ".DS_Store"
    planted["ds_store_raw"].write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 40)
    planted["ds_store_results"] = fold / ".DS_Store"
    planted["ds_store_results"].write_bytes(b"\x00\x00\x00\x01Bud1")
    # label file with 2.4
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(ds / "labelsTr" / "heart_001.nii.gz")))
    floats = labels.astype(np.float32)
    floats[3, 8, 8] = 2.4
    planted["float_label"] = ds / "labelsTr" / "heart_001.nii.gz"
    _write(floats, planted["float_label"])
    # undeclared label value 7
    labels7 = labels.copy()
    labels7[0, 0, 0] = 7
    planted["undeclared_label"] = ds / "labelsTr" / "heart_000.nii.gz"
    _write(labels7, planted["undeclared_label"])
    # corrupt npz in results: damage the compressed stream
    npz = fold / "validation" / "heart_001.npz"
    data = bytearray(npz.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    npz.write_bytes(bytes(data))
    planted["corrupt_npz"] = npz
    # truncated .nii.gz
    image = ds / "imagesTr" / "heart_002_0000.nii.gz"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    planted["truncated_image"] = image
    # uncompressed NIfTI cut short, in labelsTs (SimpleITK would pad it with zeros)
    nii = ds / "labelsTs" / "heart_004.nii"
    labels_ts = sitk.ReadImage(str(ds / "labelsTs" / "heart_004.nii.gz"))
    sitk.WriteImage(labels_ts, str(nii), False)
    nii.write_bytes(nii.read_bytes()[:-50])
    planted["truncated_nii"] = nii
    # image without label
    orphan = ds / "imagesTr" / "heart_009_0000.nii.gz"
    shutil.copy(ds / "imagesTr" / "heart_003_0000.nii.gz", orphan)
    planted["image_without_label"] = orphan
    # wrong channel suffix (dataset.json declares one channel)
    wrong = ds / "imagesTr" / "heart_003_0001.nii.gz"
    shutil.copy(ds / "imagesTr" / "heart_003_0000.nii.gz", wrong)
    planted["wrong_channel"] = wrong
    # truncated preprocessed pickle, b2nd and checkpoint
    pkl = tree.conf / "heart_001.pkl"
    pkl.write_bytes(pkl.read_bytes()[:-20])
    planted["truncated_pkl"] = pkl
    b2nd = tree.conf / "heart_002.b2nd"
    b2nd.write_bytes(b2nd.read_bytes()[: b2nd.stat().st_size - 200])
    planted["truncated_b2nd"] = b2nd
    pth = fold / "checkpoint_final.pth"
    pth.write_bytes(pth.read_bytes()[:-100])
    planted["truncated_pth"] = pth
    return planted


def snapshot(*roots: Path) -> dict[str, tuple[str, int]]:
    """Path -> (sha256, mtime_ns) of every file under the roots."""
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                out[str(path)] = (
                    hashlib.sha256(path.read_bytes()).hexdigest(),
                    path.stat().st_mtime_ns,
                )
    return out


@pytest.fixture
def clean_tree(tmp_path: Path) -> SimpleNamespace:
    return make_clean_tree(tmp_path)


@pytest.fixture
def planted_tree(tmp_path: Path) -> SimpleNamespace:
    tree = make_clean_tree(tmp_path)
    tree.planted = plant_defects(tree)
    return tree


@pytest.fixture
def nnunet_env(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def set_env(tree: SimpleNamespace) -> None:
        monkeypatch.setenv("nnUNet_raw", str(tree.raw))
        monkeypatch.setenv("nnUNet_preprocessed", str(tree.preprocessed))
        monkeypatch.setenv("nnUNet_results", str(tree.results))

    return set_env


@pytest.fixture
def helpers() -> SimpleNamespace:
    return SimpleNamespace(
        snapshot=snapshot, make_clean_tree=make_clean_tree, plant_defects=plant_defects
    )
