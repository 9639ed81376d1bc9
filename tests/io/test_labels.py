"""write_labels(any_shape=True): a small probe with the same geometry stands for a file of the
labels' shape, byte for byte (what predict/ensemble --plan rely on)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.io import read_labels, write_labels


def _write(array: np.ndarray, path, geometry) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry[0])
    image.SetOrigin(geometry[1])
    image.SetDirection(geometry[2])
    sitk.WriteImage(image, str(path), True)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([".nii.gz", ".nii", ".nrrd"]))
def test_a_probe_header_gives_the_bytes_of_the_full_file(tmp_path_factory, seed, ending):
    tmp = tmp_path_factory.mktemp("labels")
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    geometry = (
        tuple(rng.uniform(0.3, 3.0, 3)),
        tuple(rng.uniform(-100.0, 100.0, 3)),
        tuple(rotation.ravel()),
    )
    labels = rng.integers(0, 5, size=tuple(rng.integers(3, 15, 3))).astype(np.uint8)
    _write(labels, tmp / f"full{ending}", geometry)
    _write(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), tmp / f"probe{ending}", geometry)
    result = np.where(labels == 4, 0, labels)
    like = tmp / f"full{ending}"
    full = write_labels(result, tmp / f"a{ending}", like=like, exact_nifti_header=True)
    probe = write_labels(
        result,
        tmp / f"b{ending}",
        like=read_labels(tmp / f"probe{ending}"),
        exact_nifti_header=True,
        any_shape=True,
    )
    assert full.read_bytes() == probe.read_bytes()


def test_any_shape_still_needs_as_many_axes(tmp_path):
    geometry = ((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))
    _write(np.zeros((3, 4), np.uint8), tmp_path / "probe.nii.gz", geometry)
    with pytest.raises(ValueError, match=r"labels have shape \(2, 5, 6\) but the reference"):
        write_labels(
            np.zeros((2, 5, 6), np.uint8),
            tmp_path / "out.nii.gz",
            like=tmp_path / "probe.nii.gz",
            exact_nifti_header=True,
            any_shape=True,
        )
    assert not (tmp_path / "out.nii.gz").exists()
