"""Read and write label maps exactly: integers in, ``uint8`` out, geometry untouched.

nnU-Net's ``read_seg`` returns float32 and nibabel's ``get_fdata`` float64; a label of 3 written
through float arithmetic can come back as 2.9999 (nibabel #1344). Here label files are read in
their stored dtype with SimpleITK; float storage is accepted only when every value is within
``FLOAT_LABEL_TOLERANCE`` of an integer, and then rounded, never truncated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io.atomic import atomic_path

__all__ = [
    "FLOAT_LABEL_TOLERANCE",
    "LabelImage",
    "as_exact_labels",
    "read_labels",
    "write_labels",
]

#: Largest distance to an integer at which a float-stored label is repaired instead of refused.
FLOAT_LABEL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LabelImage:
    """A label map with its geometry, as read from disk.

    Attributes:
        array: Integer label array in SimpleITK axis order (z, y, x) for 3D, (y, x) for 2D;
            ``uint8`` when all labels are below 256, else ``uint16``.
        spacing: Voxel size in SimpleITK order (x, y, z).
        origin: Physical origin in SimpleITK order.
        direction: Flattened direction cosine matrix.
        path: The file it was read from.
        stored_dtype: The pixel type found in the file (e.g. ``"float32"``), for reports.
    """

    array: NDArray[np.integer[Any]]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    path: Path
    stored_dtype: str

    def geometry(self) -> dict[str, tuple[float, ...]]:
        """Return spacing, origin and direction, e.g. to compare two images."""
        return {"spacing": self.spacing, "origin": self.origin, "direction": self.direction}


def as_exact_labels(
    values: NDArray[Any], *, name: str = "labels", tolerance: float = FLOAT_LABEL_TOLERANCE
) -> NDArray[np.integer[Any]]:
    """Convert an array of label values to the smallest exact unsigned integer type.

    Integers are range-checked; floats must lie within ``tolerance`` of an integer and are
    rounded (``1.0000001`` becomes 1, ``2.9999`` becomes 3).

    Args:
        values: Label values of any numeric dtype. Not modified.
        name: How to name the data in error messages (a file path, usually).
        tolerance: Largest accepted distance of a float value to the nearest integer.

    Returns:
        ``uint8`` if the largest label is below 256, else ``uint16``.

    Raises:
        ValueError: For negative, non-finite, non-integer (beyond ``tolerance``) or > 65535 values.

    Examples:
        >>> as_exact_labels(np.array([0.0, 1.0000001, 2.9999], dtype=np.float32))
        array([0, 1, 3], dtype=uint8)
        >>> as_exact_labels(np.array([0.0, 2.4]), name="case_01.nii.gz")
        Traceback (most recent call last):
        ...
        ValueError: case_01.nii.gz: label values must be integers; found 2.4 ...
    """
    if values.dtype == np.bool_:
        return values.astype(np.uint8)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name}: label values must be finite; found NaN or Inf.")
        rounded = np.rint(values)
        deviation = np.abs(values - rounded)
        worst = int(np.argmax(deviation)) if deviation.size else 0
        if deviation.size and deviation.flat[worst] > tolerance:
            raise ValueError(
                f"{name}: label values must be integers; found {values.flat[worst]:.6g} "
                f"(more than {tolerance:g} from an integer). Fix the file that wrote it; "
                "labels are never rounded that far."
            )
        values = rounded
    elif not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name}: label values must be numeric; got dtype {values.dtype}.")
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = values.min(), values.max()
    if low < 0:
        raise ValueError(f"{name}: label values must be >= 0; found {low:g}.")
    if high > np.iinfo(np.uint16).max:
        raise ValueError(f"{name}: label values must be <= 65535; found {high:g}.")
    return values.astype(np.uint8 if high < 256 else np.uint16)


def read_labels(path: str | os.PathLike[str]) -> LabelImage:
    """Read a label file (any format SimpleITK reads: .nii.gz, .nrrd, .mha, .png, ...).

    Args:
        path: The label file.

    Returns:
        The exact integer labels and the geometry.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file cannot be read or holds non-integer labels.
    """
    import SimpleITK as sitk  # noqa: N813 - lazy: keeps `import nnunet_ext.io` fast

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"label file not found: {file}")
    try:
        image = sitk.ReadImage(str(file))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{file}: cannot read label file ({first}).") from err
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{file}: label files must have one component per voxel; "
            f"got {image.GetNumberOfComponentsPerPixel()}."
        )
    raw = sitk.GetArrayViewFromImage(image)
    return LabelImage(
        array=as_exact_labels(np.asarray(raw), name=str(file)),
        spacing=tuple(image.GetSpacing()),
        origin=tuple(image.GetOrigin()),
        direction=tuple(image.GetDirection()),
        path=file,
        stored_dtype=str(raw.dtype),
    )


def write_labels(
    labels: NDArray[Any],
    path: str | os.PathLike[str],
    *,
    like: LabelImage | str | os.PathLike[str],
    exact_nifti_header: bool = False,
) -> Path:
    """Write ``labels`` as ``uint8`` with the geometry of ``like``, atomically.

    Args:
        labels: Integer label array in SimpleITK axis order, same shape as ``like``.
        path: Destination; the ending picks the format (``.nii.gz``, ``.nrrd``, ...).
        like: A :class:`LabelImage` or an image file whose spacing, origin and direction to copy.
        exact_nifti_header: When both ``path`` and ``like``'s file are NIfTI, copy ``like``'s
            header (qform, sform, codes, units, description) bit for bit, changing only the data
            type to uint8 and the scaling to identity. A SimpleITK round trip recomputes the
            affine in float32 and can move it by ~1e-7. The gzip stream has no timestamp, so the
            same labels give the same bytes.

    Returns:
        The destination path.

    Raises:
        ValueError: If a label exceeds 255, or the shape differs from ``like``.
    """
    import SimpleITK as sitk  # noqa: N813

    exact = as_exact_labels(np.asarray(labels), name=str(path))
    if exact.dtype != np.uint8:
        raise ValueError(
            f"{path}: labels must be <= 255 to be written as uint8; found {exact.max()}."
        )
    if not isinstance(like, LabelImage):
        like = read_labels(like)
    if exact.shape != like.array.shape:
        raise ValueError(
            f"{path}: labels have shape {exact.shape} but the reference {like.path} has "
            f"{like.array.shape}."
        )
    final = Path(path)
    if exact_nifti_header and _is_nifti(final) and _is_nifti(like.path):
        _write_nifti_like(exact, final, like.path)
        return final
    image = sitk.GetImageFromArray(exact)
    image.SetSpacing(like.spacing)
    image.SetOrigin(like.origin)
    image.SetDirection(like.direction)
    with atomic_path(final) as tmp:
        sitk.WriteImage(image, str(tmp), True)
    return final


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _write_nifti_like(exact: NDArray[Any], final: Path, source: Path) -> None:
    """Write ``exact`` (SimpleITK axis order) into a copy of ``source``'s NIfTI header."""
    import gzip

    import nibabel as nib

    reference: Any = nib.load(str(source))
    header = reference.header.copy()
    data = np.ascontiguousarray(exact.T)  # SimpleITK (z, y, x) -> NIfTI (x, y, z)
    if data.shape != reference.shape:
        if data.size != int(np.prod(reference.shape)):
            raise ValueError(
                f"{final}: labels have {data.shape} voxels in NIfTI order but {source} has "
                f"{reference.shape}."
            )
        data = data.reshape(reference.shape)  # only singleton axes differ
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    image = type(reference)(data, None, header)
    image.header.set_slope_inter(1.0, 0.0)
    raw = image.to_bytes()
    if final.name.endswith(".gz"):
        try:
            from isal import igzip

            raw = igzip.compress(raw, compresslevel=1, mtime=0)
        except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
            raw = gzip.compress(raw, compresslevel=1, mtime=0)
    with atomic_path(final) as tmp:
        tmp.write_bytes(raw)
