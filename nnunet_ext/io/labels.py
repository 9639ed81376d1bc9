"""Read and write label maps exactly: integers in, ``uint8`` out, geometry untouched.

nnU-Net's ``read_seg`` returns float32 and nibabel's ``get_fdata`` float64; a label of 3 written
through float arithmetic can come back as 2.9999 (nibabel #1344). Here label files are read in
their stored dtype with SimpleITK; float storage is accepted only when every value is within
``FLOAT_LABEL_TOLERANCE`` of an integer, and then rounded, never truncated.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io.atomic import atomic_path
from nnunet_ext.io.errors import InputError

__all__ = [
    "FLOAT_LABEL_TOLERANCE",
    "MAX_UINT8_LABEL",
    "LabelImage",
    "as_exact_labels",
    "read_labels",
    "verify_image_complete",
    "write_labels",
]

_DAMAGED_FIX = (
    "The file is truncated or corrupt (an interrupted copy or download?); copy or export it again."
)

#: Largest distance to an integer at which a float-stored label is repaired instead of refused.
FLOAT_LABEL_TOLERANCE = 1e-3

#: The uint8 label ceiling: the largest label a uint8 label file holds (``np.iinfo(np.uint8).max``).
#: Every label file the package writes is uint8 (:func:`write_labels` refuses a larger label
#: instead of writing uint16), and uint8 label maps in memory hold labels up to it. 255 is not
#: reserved: nnU-Net's ignore label is whichever value ``dataset.json`` names ``"ignore"`` (the
#: highest label), and predictions never contain it. Only nnU-Net's own writers (``write_seg``,
#: which ``ensemble`` uses to match ``nnUNetv2_ensemble``) store uint8 for labels *below* this
#: value (``uint8 if max < 255 else uint16``): a command writing through them stops one below it.
MAX_UINT8_LABEL = 255


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
        InputError: For negative, non-finite, non-integer (beyond ``tolerance``) or > 65535
            values.

    Examples:
        >>> as_exact_labels(np.array([0.0, 1.0000001, 2.9999], dtype=np.float32))
        array([0, 1, 3], dtype=uint8)
        >>> as_exact_labels(np.array([0.0, 2.4]), name="case_01.nii.gz")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: case_01.nii.gz must be integer label values ...; got 2.4...
    """
    if values.dtype == np.bool_:
        return values.astype(np.uint8)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            raise InputError(name, "finite label values", "NaN or Inf")
        rounded = np.rint(values)
        deviation = np.abs(values - rounded)
        worst = int(np.argmax(deviation)) if deviation.size else 0
        if deviation.size and deviation.flat[worst] > tolerance:
            raise InputError(
                name,
                f"integer label values (within {tolerance:g} of an integer)",
                f"{values.flat[worst]:.6g}",
                fix="Fix the file that wrote it; labels are never rounded that far.",
            )
        values = rounded
    elif not np.issubdtype(values.dtype, np.integer):
        raise InputError(name, "numeric label values", f"dtype {values.dtype}")
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = values.min(), values.max()
    if low < 0:
        raise InputError(name, "label values >= 0", f"{low:g}")
    if high > np.iinfo(np.uint16).max:
        raise InputError(name, "label values <= 65535", f"{high:g}")
    return values.astype(np.uint8 if high <= MAX_UINT8_LABEL else np.uint16)


def read_labels(path: str | os.PathLike[str], *, verify: bool = True) -> LabelImage:
    """Read a label file (any format SimpleITK reads: .nii.gz, .nrrd, .mha, .png, ...).

    Args:
        path: The label file.
        verify: Check that the file is complete first (:func:`verify_image_complete`); pass
            ``False`` only right after calling it yourself.

    Returns:
        The exact integer labels and the geometry.

    The file is first verified complete with :func:`verify_image_complete` (SimpleITK fills a
    truncated ``.nii``/``.nii.gz`` with zeros without a word).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: If the file is truncated or corrupt, cannot be read, has more than one
            component per voxel or holds non-integer labels.
    """
    import SimpleITK as sitk  # noqa: N813 - lazy: keeps `import nnunet_ext.io` fast

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"label file not found: {file}")
    if verify:
        verify_image_complete(file)
    try:
        image = sitk.ReadImage(str(file))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            file, "a readable label image", f"a read error ({first[:200]})", fix=_DAMAGED_FIX
        ) from err
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            file,
            "a label image with one component per voxel",
            f"{image.GetNumberOfComponentsPerPixel()} components",
            fix="Save the labels as a single-channel integer image.",
        )
    raw = sitk.GetArrayViewFromImage(image)
    exact = as_exact_labels(np.asarray(raw), name=str(file))
    return LabelImage(
        array=exact,
        spacing=tuple(image.GetSpacing()),
        origin=tuple(image.GetOrigin()),
        direction=tuple(image.GetDirection()),
        path=file,
        stored_dtype=str(raw.dtype),
    )


def _inflate_module() -> ModuleType:
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
        return zlib
    return isal_zlib


#: Bytes of the decompressed stream kept for the header check (a NIfTI-2 header is 540 bytes).
_HEADER_BYTES = 544
#: Largest decompressed piece produced at once while verifying a gzip stream.
_INFLATE_PIECE = 1 << 20


def _inflate_to_end(path: Path) -> tuple[bytes, int]:
    """Decompress every gzip member of ``path``, checking CRC-32 and ISIZE; return head, length.

    ``wbits=31`` makes zlib (and ISA-L) parse the gzip header and verify the trailer: a wrong
    CRC-32 or length is an error, a stream that stops early never reaches end-of-stream.
    """
    inflate = _inflate_module()
    data = path.read_bytes()
    head = b""
    length = 0
    members = 0
    view: bytes = data
    while True:
        decompressor = inflate.decompressobj(31)
        pending = view
        try:
            while not decompressor.eof:
                piece = decompressor.decompress(pending, _INFLATE_PIECE)
                pending = decompressor.unconsumed_tail
                if len(head) < _HEADER_BYTES:
                    head += piece[: _HEADER_BYTES - len(head)]
                length += len(piece)
                if not piece and not pending:
                    break
        except (inflate.error, OSError, ValueError) as err:
            raise InputError(
                path, "a complete gzip stream", f"damaged data ({err})", fix=_DAMAGED_FIX
            ) from err
        if not decompressor.eof:
            raise InputError(
                path,
                "a complete gzip stream",
                f"a stream that stops early ({len(data)} bytes on disk)",
                fix=_DAMAGED_FIX,
            )
        members += 1
        view = decompressor.unused_data
        if not view or not view.strip(b"\0"):
            return head, length
        if view[:2] != b"\x1f\x8b":
            raise InputError(
                path,
                "a gzip stream and nothing after it",
                f"{len(view)} bytes of other data after gzip member {members}",
                fix=_DAMAGED_FIX,
            )


def _nifti_expected_size(path: Path, header: bytes) -> int | None:
    """Bytes a NIfTI-1/2 file must hold according to its header (``None``: not NIfTI)."""
    if len(header) < 348:
        raise InputError(
            path, "a NIfTI header of at least 348 bytes", f"{len(header)} bytes", fix=_DAMAGED_FIX
        )
    for order in ("<", ">"):
        size = struct.unpack(order + "i", header[:4])[0]
        if size == 348:
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            break
        if size == 540 and len(header) >= 540:
            dims = struct.unpack(order + "8q", header[16:80])
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            offset = int(struct.unpack(order + "q", header[168:176])[0])
            break
    else:
        return None  # not NIfTI (e.g. an ANALYZE file): left to SimpleITK
    if not 1 <= dims[0] <= 7 or bitpix <= 0 or any(d < 0 for d in dims[1 : 1 + dims[0]]):
        raise InputError(
            path,
            "a valid NIfTI header",
            f"dim={list(dims)}, bitpix={bitpix}",
            fix=_DAMAGED_FIX,
        )
    count = 1
    for size in dims[1 : 1 + dims[0]]:
        count *= max(int(size), 1)
    return int(max(offset, 0) + count * int(bitpix) // 8)


def verify_image_complete(path: str | os.PathLike[str]) -> None:
    """Check that an image file holds all the data its header announces, reading it to the end.

    SimpleITK reads a truncated ``.nii`` or ``.nii.gz`` without complaint and fills the missing
    voxels with zeros. Here a ``.gz`` file is decompressed to the end with ISA-L (zlib as the
    fallback) and its CRC-32 and length are verified; for NIfTI the (decompressed) size must
    reach what the header implies. MetaImage, NRRD and PNG readers already refuse short files.

    Args:
        path: An image file.

    Raises:
        InputError: Naming the file, when it is truncated or corrupt.

    Examples:
        >>> import gzip, tempfile
        >>> bad = Path(tempfile.mkdtemp()) / "case.nii.gz"
        >>> _ = bad.write_bytes(gzip.compress(bytes(range(256)) * 40)[:40])
        >>> verify_image_complete(bad)
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: ...case.nii.gz must be a complete gzip stream; got a ...
    """
    file = Path(path)
    name = file.name.lower()
    if name.endswith(".gz"):
        head, length = _inflate_to_end(file)
        if not name.endswith(".nii.gz"):
            return
    elif name.endswith(".nii"):
        with open(file, "rb") as handle:
            head = handle.read(_HEADER_BYTES)
        length = file.stat().st_size
    else:
        return
    expected = _nifti_expected_size(file, head)
    if expected is not None and length < expected:
        raise InputError(
            file,
            f"{expected} bytes of NIfTI data (as its header says)",
            f"{length} bytes",
            fix=_DAMAGED_FIX,
        )


def write_labels(
    labels: NDArray[Any],
    path: str | os.PathLike[str],
    *,
    like: LabelImage | str | os.PathLike[str],
    exact_nifti_header: bool = False,
    any_shape: bool = False,
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
        any_shape: ``like`` may hold another shape with as many axes (a small probe the same
            writer wrote with the same geometry): its header is copied with the dimensions of
            ``labels``. A writer's header depends on the geometry and the shape alone, so the
            bytes equal those written ``like`` a file of the labels' shape.

    Returns:
        The destination path.

    Raises:
        ValueError: If a label exceeds 255, or the shape differs from ``like``.
    """
    import SimpleITK as sitk  # noqa: N813

    exact = as_exact_labels(np.asarray(labels), name=str(path))
    if exact.dtype != np.uint8:
        raise ValueError(
            f"{path}: labels must be <= {MAX_UINT8_LABEL} to be written as uint8; "
            f"found {exact.max()}."
        )
    if not isinstance(like, LabelImage):
        like = read_labels(like)
    if exact.shape != like.array.shape and not (any_shape and exact.ndim == like.array.ndim):
        raise ValueError(
            f"{path}: labels have shape {exact.shape} but the reference {like.path} has "
            f"{like.array.shape}."
        )
    final = Path(path)
    if exact_nifti_header and _is_nifti(final) and _is_nifti(like.path):
        _write_nifti_like(exact, final, like.path, any_shape=any_shape)
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


def _write_nifti_like(
    exact: NDArray[Any], final: Path, source: Path, *, any_shape: bool = False
) -> None:
    """Write ``exact`` (SimpleITK axis order) into a copy of ``source``'s NIfTI header.

    ``any_shape``: ``source`` may hold another shape; its ``dim`` takes the labels' (and only
    ``dim``: nibabel's ``set_data_shape`` would also reset the unused ``pixdim``).
    """
    import nibabel as nib  # 60 ms: only when a label map is written

    reference: Any = nib.load(str(source))
    header = reference.header.copy()
    data = np.ascontiguousarray(exact.T)  # SimpleITK (z, y, x) -> NIfTI (x, y, z)
    shape = tuple(int(n) for n in reference.shape)
    if any_shape and data.shape != shape:
        dim = header["dim"].copy()
        if int(dim[0]) != data.ndim:
            raise ValueError(f"{final}: labels have {data.ndim} axes but {source} has {dim[0]}.")
        dim[1 : 1 + data.ndim] = data.shape
        header["dim"] = dim
        shape = data.shape
    if data.shape != shape:
        if data.size != int(np.prod(shape)):
            raise ValueError(
                f"{final}: labels have {data.shape} voxels in NIfTI order but {source} has {shape}."
            )
        data = data.reshape(shape)  # only singleton axes differ
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
