"""Read nnU-Net's ``CASE.npz`` probability files fast, in chunks, with one clear error per problem.

``np.load(path)["probabilities"]`` inflates the whole member with zlib and reports damage as a bare
``zlib.error`` or ``BadZipFile``. Here the zip member is located through the central directory,
inflated with ISA-L (``isal.isal_zlib``, several times faster than zlib; the standard ``zlib``
is the fallback and gives identical bytes) and parsed with ``numpy.lib.format``. The CRC-32 of the
zip entry is verified, so a corrupt or truncated file is always reported with its path.

Pairing ``CASE.npz`` with ``CASE.nii.gz.npz`` across folders is in :mod:`nnunet_ext.io.cases`;
the matching ``.pkl`` in :mod:`nnunet_ext.io.case_properties`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io.cases import case_id_from_filename
from nnunet_ext.io.errors import InputError

__all__ = [
    "PROBABILITIES_KEY",
    "PROBABILITY_TOLERANCE",
    "ProbabilityFile",
    "inspect_probabilities",
    "iter_probability_chunks",
    "read_probabilities",
]

#: The array name inside nnU-Net v2's ``CASE.npz``.
PROBABILITIES_KEY = "probabilities"

#: Decompressed bytes per chunk when streaming.
DEFAULT_CHUNK_BYTES = 1 << 20

#: Probabilities may leave [0, 1] by this much (float32 rounding of softmax/sigmoid).
PROBABILITY_TOLERANCE = 1e-4

#: Deflate cannot expand data by more than about 1032:1; a header announcing more is crafted.
_MAX_DEFLATE_RATIO = 1100

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"


def _inflate_module(use_isal: bool | None) -> ModuleType:
    """Return ``isal.isal_zlib`` (if wanted and installed) or the standard ``zlib``."""
    if use_isal is False:
        return zlib
    try:
        from isal import isal_zlib
    except ImportError:
        if use_isal:
            raise ModuleNotFoundError(
                "use_isal=True needs the 'isal' package; install it with `pip install isal`."
            ) from None
        return zlib
    return isal_zlib


@dataclass(frozen=True)
class ProbabilityFile:
    """Where a probability array lives inside an ``.npz`` and what it looks like.

    Attributes:
        path: The ``.npz`` file.
        shape: Array shape ``(C, ...)``.
        dtype: Stored dtype (float32 for nnU-Net v2).
        fortran_order: Whether the data is stored in Fortran order.
        data_offset: Byte offset of the zip member's (compressed) data in the file.
        compress_size: Compressed size of the member in bytes.
        file_size: Uncompressed size of the member (``.npy`` header included).
        crc: CRC-32 of the uncompressed member, from the zip directory.
        compress_type: ``zipfile.ZIP_DEFLATED`` or ``zipfile.ZIP_STORED``.
        header_size: Size of the ``.npy`` header inside the member.
    """

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran_order: bool
    data_offset: int
    compress_size: int
    file_size: int
    crc: int
    compress_type: int
    header_size: int

    @property
    def num_classes(self) -> int:
        """Number of channels ``C``."""
        return self.shape[0]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape without the channel axis."""
        return self.shape[1:]


_REEXPORT = "Re-export it with nnUNetv2_predict --save_probabilities (or nnUNetv2_train --npz)."


def _bad_file(path: Path, reason: str) -> InputError:
    return InputError(
        path,
        "a complete nnU-Net probability file (.npz)",
        f"{reason}; it is truncated or corrupt",
        fix=_REEXPORT,
    )


def _case_of(path: Path) -> str:
    try:
        return case_id_from_filename(path.name, ".npz")
    except ValueError:
        return path.name


def _check_values(info: ProbabilityFile, values: NDArray[Any]) -> None:
    """Raise unless every value is a probability: finite, in [0, 1] up to the tolerance."""
    if values.size == 0:
        return
    low, high = values.min(), values.max()  # NaN propagates into both
    if low >= -PROBABILITY_TOLERANCE and high <= 1 + PROBABILITY_TOLERANCE:
        return
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        found = "NaN" if np.isnan(values).any() else "an infinite value"
    else:
        found = f"{float(low if low < -PROBABILITY_TOLERANCE else high):.6g}"
    raise InputError(
        info.path,
        "probabilities: finite values in [0, 1]",
        f"{found} (case {_case_of(info.path)!r})",
        fix="Re-export the prediction; the model or export produced invalid values "
        "(logits instead of probabilities?).",
    )


def _raw_member_bytes(file: Any, info: ProbabilityFile, block: int) -> Iterator[bytes]:
    file.seek(info.data_offset)
    remaining = info.compress_size
    while remaining > 0:
        data = file.read(min(block, remaining))
        if not data:
            raise _bad_file(info.path, "file ends inside the compressed data")
        remaining -= len(data)
        yield data


def _member_bytes(
    info: ProbabilityFile, *, chunk_bytes: int, use_isal: bool | None
) -> Generator[bytes, None, None]:
    """Yield the uncompressed member bytes in pieces of at most ``chunk_bytes``; verify the CRC."""
    inflate = _inflate_module(use_isal)
    crc = 0
    total = 0
    with open(info.path, "rb") as file:
        if info.compress_type == zipfile.ZIP_STORED:
            for piece in _raw_member_bytes(file, info, chunk_bytes):
                crc = inflate.crc32(piece, crc)
                total += len(piece)
                yield piece
        else:
            decompressor = inflate.decompressobj(-15)
            try:
                for compressed in _raw_member_bytes(file, info, max(chunk_bytes // 4, 1 << 16)):
                    pending = compressed
                    while pending:
                        piece = decompressor.decompress(pending, chunk_bytes)
                        pending = decompressor.unconsumed_tail
                        if piece:
                            crc = inflate.crc32(piece, crc)
                            total += len(piece)
                            if total > info.file_size:
                                raise _bad_file(
                                    info.path, "CRC-32 or size mismatch in the zip entry"
                                )
                            yield piece
                        if decompressor.eof:
                            break
                tail = decompressor.flush()
                if tail and total + len(tail) > info.file_size:
                    raise _bad_file(info.path, "CRC-32 or size mismatch in the zip entry")
                if tail:
                    crc = inflate.crc32(tail, crc)
                    total += len(tail)
                    yield tail
            except inflate.error as err:
                raise _bad_file(info.path, f"zlib error: {err}") from err
            if not decompressor.eof:
                raise _bad_file(info.path, "compressed data ends early")
    if total != info.file_size or (crc & 0xFFFFFFFF) != info.crc:
        raise _bad_file(info.path, "CRC-32 or size mismatch in the zip entry")


def inspect_probabilities(
    path: str | os.PathLike[str], *, key: str = PROBABILITIES_KEY
) -> ProbabilityFile:
    """Read the zip directory and ``.npy`` header of an ``.npz`` without inflating the data.

    Args:
        path: A ``CASE.npz`` written by nnU-Net (``np.savez_compressed``).
        key: The array name inside the ``.npz``.

    Returns:
        Shape, dtype and location of the array.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a zip (e.g. truncated), lacks ``key``, or holds something
            other than a real-valued array of at least one dimension.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"probability file not found: {file}")
    zinfo = _zip_member(file, key)
    data_offset = _data_offset(file, zinfo)
    partial = ProbabilityFile(
        path=file,
        shape=(),
        dtype=np.dtype(np.float32),
        fortran_order=False,
        data_offset=data_offset,
        compress_size=zinfo.compress_size,
        file_size=zinfo.file_size,
        crc=zinfo.CRC,
        compress_type=zinfo.compress_type,
        header_size=0,
    )
    shape, dtype, fortran_order, header_size = _parse_npy_header(partial)
    if len(shape) < 2 or not np.issubdtype(dtype, np.floating):
        raise InputError(
            file,
            f"{key!r} as a floating-point array of shape (C, ...)",
            f"shape {shape}, dtype {dtype}",
            fix=_REEXPORT,
        )
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected != zinfo.file_size:
        raise _bad_file(
            file, f"member holds {zinfo.file_size} bytes, the header announces {expected}"
        )
    return dataclasses.replace(
        partial, shape=shape, dtype=dtype, fortran_order=fortran_order, header_size=header_size
    )


def _zip_member(file: Path, key: str) -> zipfile.ZipInfo:
    """The zip directory entry of ``key.npy`` (deflated or stored)."""
    member = f"{key}.npy"
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
            if member not in names:
                found = ", ".join(n.removesuffix(".npy") for n in names) or "nothing"
                hint = (
                    " This looks like an nnU-Net v1 file ('softmax'); re-export with nnU-Net v2."
                    if "softmax.npy" in names
                    else ""
                )
                raise InputError(
                    file,
                    f"an .npz with the array {key!r}",
                    f"only {found}",
                    fix=hint.strip() or _REEXPORT,
                )
            zinfo = archive.getinfo(member)
    except zipfile.BadZipFile as err:
        raise _bad_file(file, f"bad zip: {err}") from err
    except (EOFError, struct.error, OSError, ValueError, NotImplementedError) as err:
        if isinstance(err, InputError):
            raise
        raise _bad_file(file, f"bad zip: {err}") from err
    if zinfo.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InputError(
            file,
            "a zip member compressed with deflate or stored",
            f"compression type {zinfo.compress_type}",
            fix="Re-save it with numpy.savez_compressed.",
        )
    return zinfo


def _data_offset(file: Path, zinfo: zipfile.ZipInfo) -> int:
    """Where the member's compressed data starts; checks it fits the file and deflate's ratio."""
    with open(file, "rb") as handle:
        handle.seek(zinfo.header_offset)
        raw = handle.read(_LOCAL_HEADER.size)
        if len(raw) != _LOCAL_HEADER.size or raw[:4] != _LOCAL_MAGIC:
            raise _bad_file(file, "bad local zip header")
        fields = _LOCAL_HEADER.unpack(raw)
        name_length, extra_length = fields[9], fields[10]
    data_offset: int = zinfo.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if data_offset + zinfo.compress_size > file.stat().st_size:
        raise _bad_file(file, "the file ends inside the compressed data")
    limit = (
        zinfo.compress_size
        if zinfo.compress_type == zipfile.ZIP_STORED
        else zinfo.compress_size * _MAX_DEFLATE_RATIO + 1024
    )
    if zinfo.file_size > limit:
        raise _bad_file(
            file,
            f"the zip directory announces {zinfo.file_size} bytes from {zinfo.compress_size} "
            "compressed bytes, more than deflate can produce",
        )
    return data_offset


def _parse_npy_header(info: ProbabilityFile) -> tuple[tuple[int, ...], np.dtype[Any], bool, int]:
    buffer = bytearray()
    stream = _member_bytes(info, chunk_bytes=1 << 16, use_isal=None)
    try:
        needed = 12
        for piece in stream:
            buffer += piece
            if len(buffer) >= 12:
                major = buffer[6]
                if buffer[:6] != b"\x93NUMPY" or major not in (1, 2, 3):
                    raise _bad_file(info.path, "the member is not a .npy array")
                if major == 1:
                    needed = 10 + struct.unpack("<H", bytes(buffer[8:10]))[0]
                else:
                    needed = 12 + struct.unpack("<I", bytes(buffer[8:12]))[0]
            if len(buffer) >= needed and len(buffer) >= 12:
                break
    except ValueError:
        raise
    finally:
        stream.close()
    if len(buffer) < needed or len(buffer) < 10:
        raise _bad_file(info.path, "the .npy header is incomplete")
    fp = io.BytesIO(bytes(buffer[:needed]))
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fp)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(fp)
    except ValueError as err:
        raise _bad_file(info.path, f"bad .npy header: {err}") from err
    if dtype.hasobject:
        raise InputError(info.path, "a numeric probability array", "object dtype", fix=_REEXPORT)
    return tuple(int(s) for s in shape), np.dtype(dtype), bool(fortran_order), needed


def iter_probability_chunks(
    info: ProbabilityFile,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    use_isal: bool | None = None,
    check_values: bool = True,
) -> Iterator[tuple[int, NDArray[Any]]]:
    """Stream the array of ``info`` as ``(flat_offset, values)`` chunks, in storage order.

    Storage order is C order unless ``info.fortran_order``. Chunks are 1-D, in ``info.dtype``,
    and valid only until the next chunk is requested (copy to keep). The CRC is checked when the
    stream ends, so damage is reported at the latest with the last chunk.

    Args:
        info: From :func:`inspect_probabilities`.
        chunk_bytes: Largest decompressed piece.
        use_isal: ``None`` uses ISA-L when installed, ``False`` forces the standard ``zlib``.
        check_values: Refuse NaN, infinite, negative or > 1 values (beyond
            :data:`PROBABILITY_TOLERANCE`) as each chunk passes: a min and a max per chunk.

    Yields:
        The flat element offset of the chunk and the chunk.

    Raises:
        InputError: If the file is corrupt or truncated, or holds values that are not
            probabilities (message names the file and the case).
    """
    itemsize = info.dtype.itemsize
    skip = info.header_size
    carry = b""
    offset = 0
    for raw in _member_bytes(info, chunk_bytes=chunk_bytes, use_isal=use_isal):
        piece: bytes | memoryview = raw
        if skip:
            if len(raw) <= skip:
                skip -= len(raw)
                continue
            piece = memoryview(raw)[skip:]  # no copy
            skip = 0
        if carry:
            piece = carry + bytes(piece)
            carry = b""
        usable = len(piece) - len(piece) % itemsize
        if usable != len(piece):
            carry = bytes(piece[usable:])
        if usable:
            values = np.frombuffer(piece, dtype=info.dtype, count=usable // itemsize)
            if check_values:
                _check_values(info, values)
            yield offset, values
            offset += values.size
    if carry or skip:
        raise _bad_file(info.path, "the array data is incomplete")


def read_probabilities(
    path: str | os.PathLike[str],
    *,
    key: str = PROBABILITIES_KEY,
    use_isal: bool | None = None,
    check_finite: bool = True,
) -> NDArray[np.float32]:
    """Read the probability array of an nnU-Net ``CASE.npz`` as float32.

    Gives exactly ``np.load(path)[key].astype(np.float32)``, faster, with clear errors.

    Args:
        path: The ``.npz`` file (``CASE.npz`` or ``CASE.nii.gz.npz``).
        key: Array name in the ``.npz``.
        use_isal: ``None`` uses ISA-L when installed, ``False`` forces the standard ``zlib``.
        check_finite: Raise if the array holds NaN, Inf or values outside [0, 1] (checked
            while streaming).

    Returns:
        A C-contiguous float32 array ``(C, ...)``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: For a truncated or corrupt file (zip, zlib or CRC error), a missing ``key``,
            or values that are not probabilities; the message names the file.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> np.savez_compressed(folder / "c.npz", probabilities=np.eye(2, dtype=np.float32))
        >>> read_probabilities(folder / "c.npz")
        array([[1., 0.],
               [0., 1.]], dtype=float32)
    """
    info = inspect_probabilities(path, key=key)
    flat = np.empty(int(np.prod(info.shape, dtype=np.int64)), dtype=np.float32)
    chunks = iter_probability_chunks(info, use_isal=use_isal, check_values=check_finite)
    for offset, values in chunks:
        flat[offset : offset + values.size] = values
    shaped = flat.reshape(info.shape, order="F") if info.fortran_order else flat.reshape(info.shape)
    return np.ascontiguousarray(shaped)
