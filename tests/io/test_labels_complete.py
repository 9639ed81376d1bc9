"""read_labels reads every label file to the end: truncation and damage are InputErrors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnunet_ext.io import InputError, read_labels, verify_image_complete


def _labels(seed: int = 0, shape: tuple[int, int, int] = (6, 20, 18)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[1:5, 3:15, 2:12] = 1
    labels[2:4, 5:10, 4:9] = 2
    noise = rng.random(shape) < 0.05
    labels[noise] = rng.integers(0, 4, size=int(noise.sum()), dtype=np.uint8)
    return labels


def _write(path: Path, labels: np.ndarray, *, compress: bool = True) -> bytes:
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((0.8, 0.9, 2.5))
    sitk.WriteImage(image, str(path), compress)
    return path.read_bytes()


@pytest.fixture(scope="module")
def nii_gz(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, bytes]:
    labels = _labels()
    data = _write(tmp_path_factory.mktemp("lab") / "case.nii.gz", labels)
    return labels, data


def test_intact_file_reads_exactly(tmp_path: Path, nii_gz: tuple[np.ndarray, bytes]) -> None:
    labels, data = nii_gz
    (tmp_path / "c.nii.gz").write_bytes(data)
    np.testing.assert_array_equal(read_labels(tmp_path / "c.nii.gz").array, labels)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_nii_gz_anywhere_is_an_input_error(
    tmp_path: Path, nii_gz: tuple[np.ndarray, bytes], fraction: float
) -> None:
    _, data = nii_gz
    cut = int(fraction * len(data))
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(data[:cut])
    with pytest.raises(InputError) as info:
        read_labels(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cut_from_end", [1, 4, 8, 9, 100, 1000])
def test_truncated_near_the_end(
    tmp_path: Path, nii_gz: tuple[np.ndarray, bytes], cut_from_end: int
) -> None:
    _, data = nii_gz
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(data[:-cut_from_end])
    with pytest.raises(InputError, match=r"cut\.nii\.gz must be a complete gzip stream"):
        read_labels(path)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.floats(0.0, 1.0, exclude_max=True), bit=st.integers(0, 7))
def test_flipped_bit_never_gives_different_labels(
    tmp_path: Path, nii_gz: tuple[np.ndarray, bytes], position: float, bit: int
) -> None:
    """The property: a damaged file is refused, or it reads to exactly the original labels
    (a flip in gzip header fields nothing checks, such as the mtime, changes no voxel)."""
    labels, data = nii_gz
    damaged = bytearray(data)
    damaged[int(position * len(data))] ^= 1 << bit
    path = tmp_path / "flip.nii.gz"
    path.write_bytes(bytes(damaged))
    outcome: InputError | np.ndarray
    try:
        outcome = read_labels(path).array
    except InputError as err:
        outcome = err
    if isinstance(outcome, InputError):
        assert str(path) in str(outcome)
    else:
        np.testing.assert_array_equal(outcome, labels)


def test_truncated_uncompressed_nii(tmp_path: Path) -> None:
    data = _write(tmp_path / "full.nii", _labels(), compress=False)
    path = tmp_path / "cut.nii"
    path.write_bytes(data[: len(data) - 50])
    with pytest.raises(
        InputError, match=r"cut\.nii must be \d+ bytes of NIfTI data .*; got \d+ bytes"
    ):
        read_labels(path)


def test_nii_gz_whose_data_is_shorter_than_its_header_says(tmp_path: Path) -> None:
    """A complete gzip stream of a short NIfTI (cut before compressing) is refused too."""
    raw = gzip.decompress(_write(tmp_path / "full.nii.gz", _labels()))
    path = tmp_path / "short.nii.gz"
    path.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(InputError, match=r"short\.nii\.gz must be \d+ bytes of NIfTI data"):
        read_labels(path)


def test_multi_member_gzip_and_trailing_zeros_are_accepted(tmp_path: Path) -> None:
    labels = _labels()
    raw = gzip.decompress(_write(tmp_path / "full.nii.gz", labels))
    half = len(raw) // 2
    path = tmp_path / "multi.nii.gz"
    path.write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]) + bytes(16))
    verify_image_complete(path)
    np.testing.assert_array_equal(read_labels(path).array, labels)


def test_junk_after_the_gzip_stream_is_refused(
    tmp_path: Path, nii_gz: tuple[np.ndarray, bytes]
) -> None:
    _, data = nii_gz
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(data + b"junk after the end")
    with pytest.raises(
        InputError, match=r"junk\.nii\.gz must be a gzip stream and nothing after it"
    ):
        read_labels(path)


def test_bad_nifti_header_dims(tmp_path: Path) -> None:
    raw = bytearray(gzip.decompress(_write(tmp_path / "full.nii.gz", _labels())))
    raw[40:42] = struct.pack("<h", 9)  # dim[0] = 9: impossible
    path = tmp_path / "dims.nii.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(InputError, match=r"dims\.nii\.gz must be a valid NIfTI header"):
        read_labels(path)


@pytest.mark.parametrize("ending", [".mha", ".nrrd"])
def test_other_formats_truncated_are_input_errors(tmp_path: Path, ending: str) -> None:
    data = _write(tmp_path / f"full{ending}", _labels())
    path = tmp_path / f"cut{ending}"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match=rf"cut\{ending} must be a readable label image"):
        read_labels(path)


def test_float_and_multicomponent_labels(tmp_path: Path) -> None:
    values = _labels().astype(np.float32)
    values[0, 0, 0] = 1.5
    _write(tmp_path / "float.nii.gz", values)
    with pytest.raises(
        InputError, match=r"float\.nii\.gz must be integer label values .*; got 1\.5"
    ):
        read_labels(tmp_path / "float.nii.gz")
    vector = sitk.GetImageFromArray(np.zeros((4, 5, 2), dtype=np.uint8), isVector=True)
    sitk.WriteImage(vector, str(tmp_path / "vec.nii.gz"))
    with pytest.raises(InputError, match=r"vec\.nii\.gz must be a label image with one component"):
        read_labels(tmp_path / "vec.nii.gz")
