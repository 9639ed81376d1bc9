"""Probability files: values checked while streaming, crafted headers refused before allocation."""

from __future__ import annotations

import pickle
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.io import InputError
from nnunet_ext.io.case_properties import check_case_properties, load_case_properties
from nnunet_ext.io.probabilities import inspect_probabilities, read_probabilities
from nnunet_ext.synthetic import sitk_properties


def _softmax(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    ("value", "found"),
    [
        (np.nan, "NaN"),
        (np.inf, "an infinite value"),
        (-np.inf, "an infinite value"),
        (-0.01, "-0.01"),
        (1.01, "1.01"),
        (7.0, "7"),
    ],
)
def test_values_that_are_not_probabilities(tmp_path: Path, value: float, found: str) -> None:
    p = _softmax((3, 4, 30, 30))
    p[1, 2, 17, 5] = value
    path = tmp_path / "case_007.npz"
    np.savez_compressed(path, probabilities=p)
    with pytest.raises(InputError) as info:
        read_probabilities(path)
    message = str(info.value)
    assert message.startswith(f"{path} must be probabilities: finite values in [0, 1]; got {found}")
    assert "(case 'case_007')" in message


@settings(max_examples=40, deadline=None)
@given(
    st.floats(-1e-4 * 0.9, 1e-4 * 0.9),
    st.integers(0, 3 * 4 * 5 * 6 - 1),
)
def test_rounding_within_tolerance_is_accepted(excess: float, index: int) -> None:
    import tempfile

    p = _softmax((3, 4, 5, 6))
    p.flat[index] = (1.0 if excess > 0 else 0.0) + excess
    path = Path(tempfile.mkdtemp()) / "c.npz"
    np.savez_compressed(path, probabilities=p)
    np.testing.assert_array_equal(read_probabilities(path), p)


def test_checks_can_be_disabled_and_match_np_load(tmp_path: Path) -> None:
    p = _softmax((2, 3, 4, 5)) * 3.0  # logits-like values
    np.savez_compressed(tmp_path / "l.npz", probabilities=p)
    np.testing.assert_array_equal(read_probabilities(tmp_path / "l.npz", check_finite=False), p)


def _patch_sizes(path: Path, *, file_size: int) -> None:
    """Rewrite the uncompressed size of the only member in the local and central headers."""
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, file_size)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, file_size)
    path.write_bytes(bytes(data))


def test_crafted_sizes_are_refused_before_any_allocation(tmp_path: Path) -> None:
    path = tmp_path / "crafted.npz"
    np.savez_compressed(path, probabilities=np.zeros((2, 4, 4, 4), dtype=np.float32))
    _patch_sizes(path, file_size=0xFFFF0000)
    tracemalloc.start()
    try:
        with pytest.raises(
            InputError, match=r"crafted\.npz must be a complete .* more than deflate"
        ):
            read_probabilities(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_header_announcing_a_huge_shape_is_refused_before_allocation(tmp_path: Path) -> None:
    """An .npy header claiming (4, 4096, 4096, 4096) float32 (1 TiB) inside a tiny member."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), dtype=np.float32))
    header["shape"] = (4, 4096, 4096, 4096)
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    buffer.write(bytes(64))
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("probabilities.npy", buffer.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"huge\.npz must be .*the header announces"):
            read_probabilities(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_properties_need_the_geometry_of_the_reader(tmp_path: Path) -> None:
    props = sitk_properties((4, 5, 6))
    assert check_case_properties(props, "c.pkl", reader_writer="SimpleITKIO", shape=(4, 5, 6))
    assert check_case_properties(props, "c.pkl", reader_writer="SimpleITKIO", shape=(6, 5, 4))
    del props["sitk_stuff"]
    with pytest.raises(
        InputError, match=r"c\.pkl: sitk_stuff must be present \(as a dict; SimpleITKIO needs it"
    ):
        check_case_properties(props, "c.pkl", reader_writer="SimpleITKIO")
    with pytest.raises(InputError, match=r"c\.pkl: nibabel_stuff must be present"):
        check_case_properties(props, "c.pkl", reader_writer="NibabelIO")
    reoriented = sitk_properties((4, 5, 6))
    reoriented["sitk_stuff"]["original_orientation"] = "LPS"
    assert check_case_properties(reoriented, "c.pkl", reader_writer="SimpleITKIOWithReorient")
    reoriented["sitk_stuff"]["original_orientation"] = 3
    with pytest.raises(
        InputError, match=r"sitk_stuff\.original_orientation must be an orientation"
    ):
        check_case_properties(reoriented, "c.pkl", reader_writer="SimpleITKIOWithReorient")
    short = sitk_properties((4, 5, 6))
    short["sitk_stuff"]["origin"] = (0.0, 0.0)
    with pytest.raises(InputError, match=r"sitk_stuff\.origin must be 3 values \(spacing has 3\)"):
        check_case_properties(short, "c.pkl", reader_writer="SimpleITKIO")
    flat = sitk_properties((5, 6), spacing=(1.0, 1.0))
    flat["shape_before_cropping"] = (1, 5, 6)  # nnU-Net reads 2D images as (1, y, x)
    assert check_case_properties(flat, "c.pkl", reader_writer="SimpleITKIO", shape=(1, 5, 6))
    with pytest.raises(InputError, match=r"sitk_stuff\.spacing must be 3 values for"):
        check_case_properties(flat, "c.pkl", reader_writer="SimpleITKIO", shape=(2, 5, 6))
    for key, value, match in (
        ("spacing", (1.0, 0.0, 2.0), r"sitk_stuff\.spacing must be positive voxel sizes"),
        ("direction", (0.0,) * 9, r"sitk_stuff\.direction must be a direction matrix with a non"),
    ):
        bad = sitk_properties((4, 5, 6))
        bad["sitk_stuff"][key] = value
        with pytest.raises(InputError, match=match):
            check_case_properties(bad, "c.pkl", reader_writer="SimpleITKIO")
    broken = sitk_properties((4, 5, 6))
    broken["sitk_stuff"]["origin"] = "here"
    with pytest.raises(InputError, match=r"c\.pkl: sitk_stuff\.origin must be finite numbers"):
        check_case_properties(broken, "c.pkl", reader_writer="SimpleITKIO")
    with pytest.raises(
        InputError,
        match=r"c\.pkl: shape_before_cropping must be the shape of the probabilities \(4, 5, 7\)",
    ):
        check_case_properties(sitk_properties((4, 5, 6)), "c.pkl", shape=(4, 5, 7))


def test_load_case_properties_finds_and_checks_the_pkl(tmp_path: Path) -> None:
    p = _softmax((2, 3, 4, 5))
    np.savez_compressed(tmp_path / "c.npz", probabilities=p)
    props = sitk_properties((3, 4, 5))
    props["sitk_stuff"].pop("direction")
    (tmp_path / "c.pkl").write_bytes(pickle.dumps(props))
    with pytest.raises(InputError, match=r"c\.pkl: sitk_stuff\.direction must be present"):
        load_case_properties(tmp_path / "c.npz", reader_writer="SimpleITKIO", shape=(3, 4, 5))
    (tmp_path / "c.pkl").write_bytes(pickle.dumps(sitk_properties((3, 4, 5)))[:20])
    with pytest.raises(ValueError, match=r"c\.pkl: not a readable properties pickle"):
        load_case_properties(tmp_path / "c.npz")


def test_inspect_reads_no_data(tmp_path: Path) -> None:
    p = _softmax((2, 3, 4, 5))
    np.savez_compressed(tmp_path / "c.npz", probabilities=p)
    info = inspect_probabilities(tmp_path / "c.npz")
    assert info.shape == p.shape
