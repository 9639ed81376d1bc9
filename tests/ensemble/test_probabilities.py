from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnunet_ext.io.case_properties import properties_path
from nnunet_ext.io.cases import pair_probability_files
from nnunet_ext.io.probabilities import (
    inspect_probabilities,
    iter_probability_chunks,
    read_probabilities,
)


@pytest.fixture
def npz(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, np.ndarray]:
    array = rng.random((3, 6, 17, 11), dtype=np.float32)
    array[:, :3] = 0.25  # compressible part
    path = tmp_path / "case.npz"
    np.savez_compressed(path, probabilities=array)
    return path, array


@pytest.mark.parametrize("use_isal", [None, False], ids=["isal", "zlib"])
@pytest.mark.parametrize("chunk_bytes", [5, 4096, 1 << 22])
def test_isal_and_zlib_match_np_load(npz, use_isal, chunk_bytes):
    path, array = npz
    info = inspect_probabilities(path)
    flat = np.empty(array.size, dtype=np.float32)
    for offset, values in iter_probability_chunks(info, chunk_bytes=chunk_bytes, use_isal=use_isal):
        flat[offset : offset + values.size] = values
    assert np.array_equal(flat.reshape(array.shape), np.load(path)["probabilities"])
    assert np.array_equal(read_probabilities(path, use_isal=use_isal), array)


def test_stored_fortran_and_float16(tmp_path, rng):
    array = rng.random((2, 3, 4), dtype=np.float32)
    np.savez(tmp_path / "stored.npz", probabilities=array)
    assert np.array_equal(read_probabilities(tmp_path / "stored.npz"), array)
    np.savez_compressed(tmp_path / "f.npz", probabilities=np.asfortranarray(array))
    assert inspect_probabilities(tmp_path / "f.npz").fortran_order
    assert np.array_equal(read_probabilities(tmp_path / "f.npz"), array)
    np.savez_compressed(tmp_path / "h.npz", probabilities=array.astype(np.float16))
    assert np.array_equal(
        read_probabilities(tmp_path / "h.npz"), array.astype(np.float16).astype(np.float32)
    )


def test_truncated_file_is_named(npz):
    path, _ = npz
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        ValueError,
        match=r"case\.npz must be a complete nnU-Net probability file \(\.npz\); got bad zip",
    ):
        read_probabilities(path)


def test_corrupt_deflate_stream_is_named(npz):
    path, _ = npz
    info = inspect_probabilities(path)
    data = bytearray(path.read_bytes())
    middle = info.data_offset + info.compress_size // 2
    data[middle : middle + 64] = bytes(64)  # zip directory intact, data damaged
    path.write_bytes(bytes(data))
    for use_isal in (None, False):
        with pytest.raises(
            ValueError, match=r"case\.npz must be a complete nnU-Net .*; got (zlib|CRC)"
        ):
            read_probabilities(path, use_isal=use_isal)


def test_nan_and_missing_key(tmp_path):
    bad = np.ones((2, 2, 2), dtype=np.float32)
    bad[0, 0, 0] = np.nan
    np.savez_compressed(tmp_path / "nan.npz", probabilities=bad)
    with pytest.raises(
        ValueError, match=r"nan\.npz must be probabilities: finite values in \[0, 1\]; got NaN"
    ):
        read_probabilities(tmp_path / "nan.npz")
    np.savez_compressed(tmp_path / "v1.npz", softmax=bad)
    with pytest.raises(
        ValueError,
        match=r"v1\.npz must be an \.npz with the array 'probabilities'; got only softmax.*v1",
    ):
        read_probabilities(tmp_path / "v1.npz")
    with pytest.raises(FileNotFoundError, match="probability file not found"):
        read_probabilities(tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"text\.npz must be a complete nnU-Net probability file"):
        inspect_probabilities(tmp_path / "text.npz")


def test_pairing_nii_gz_npz_with_npz_and_hidden_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    arr = np.zeros((2, 1, 2, 2), dtype=np.float32)
    np.savez_compressed(a / "c1.npz", probabilities=arr)
    np.savez_compressed(b / "c1.nii.gz.npz", probabilities=arr)
    (b / "._c1.npz").write_bytes(b"\x00\x05junk")
    paired = pair_probability_files([a, b])
    assert paired.cases == {"c1": (a / "c1.npz", b / "c1.nii.gz.npz")}
    assert paired.ignored == (b / "._c1.npz",)
    assert paired.missing == {}
    (b / "c1.nii.gz.pkl").write_bytes(b"")
    assert properties_path(b / "c1.nii.gz.npz") == b / "c1.nii.gz.pkl"
    (b / "c1.nii.gz.pkl").unlink()
    (b / "c1.pkl").write_bytes(b"")
    assert properties_path(b / "c1.nii.gz.npz") == b / "c1.pkl"


def test_zip_with_unexpected_compression(tmp_path):
    path = tmp_path / "bz.npz"
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_BZIP2) as z,
        z.open("probabilities.npy", "w") as f,
    ):
        np.lib.format.write_array(f, np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(
        ValueError,
        match="must be a zip member compressed with deflate or stored; got compression type 12",
    ):
        inspect_probabilities(path)
