"""Read zip files (submissions) completely: every member inflated and its CRC-32 verified.

``zipfile`` reports a damaged member only when it is read, as a bare ``BadZipFile``, ``zlib.error``
or ``EOFError``. :func:`verify_zip` reads every member to the end before any work starts and
turns each of these into one :class:`~nnunet_ext.io.errors.InputError` naming the zip and member.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

from nnunet_ext.io.errors import InputError

__all__ = ["read_zip_member", "verify_zip", "verify_zip_members"]

#: Deflate cannot expand data by more than about 1032:1; a directory announcing more is crafted.
_MAX_RATIO = 1100
_FIX = "The zip is truncated or corrupt; build or download it again."


def _member_error(path: Path, name: str, err: BaseException) -> InputError:
    return InputError(
        path,
        "a zip whose members pass their CRC-32 check",
        f"member {name!r} damaged ({type(err).__name__}: {str(err)[:120]})",
        fix=_FIX,
    )


def read_zip_member(archive: zipfile.ZipFile, name: str, path: str | os.PathLike[str]) -> bytes:
    """Read one member to the end (CRC-32 verified by ``zipfile``), with one clear error.

    Raises:
        InputError: If the member is damaged.
    """
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        raise _member_error(Path(path), name, err) from err


def verify_zip(path: str | os.PathLike[str]) -> list[str]:
    """Check that ``path`` is a complete zip whose every member inflates with the right CRC-32.

    Members are streamed (never held in memory whole); a member whose announced size is more
    than deflate can produce from its compressed size is refused without inflating it.

    Args:
        path: The zip file.

    Returns:
        The member names, in directory order.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: If it is not a zip, its directory is damaged, or a member fails its check.

    Examples:
        >>> import tempfile
        >>> bad = Path(tempfile.mkdtemp()) / "sub.zip"
        >>> _ = bad.write_bytes(b"PK not really")
        >>> verify_zip(bad)
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: ...sub.zip must be a zip file; got ...
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"zip file not found: {file}")
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as err:
        raise InputError(
            file, "a zip file", f"something else ({str(err)[:120]})", fix=_FIX
        ) from err
    with archive:
        return verify_zip_members(archive, file)


def verify_zip_members(archive: zipfile.ZipFile, source: str | os.PathLike[str]) -> list[str]:
    """Read every member of an open zip to the end (CRC-32 checked): :func:`verify_zip`'s check.

    For a zip held in memory (a checkpoint inside a bundle) as for a file.

    Raises:
        InputError: Naming ``source`` and the member, if one is damaged, encrypted, of an
            unknown compression or announces an impossible size.
    """
    file = Path(source)
    infos = archive.infolist()
    for info in infos:
        if info.is_dir():
            continue
        ratio_limit = info.compress_size * _MAX_RATIO + 1024
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > ratio_limit:
            raise InputError(
                file,
                "a zip whose member sizes are possible",
                f"member {info.filename!r} announcing {info.file_size} bytes from "
                f"{info.compress_size}",
                fix=_FIX,
            )
        try:
            with archive.open(info) as stream:
                while stream.read(1 << 20):
                    pass
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            OSError,
            ValueError,
            NotImplementedError,
            RuntimeError,  # an encrypted member
        ) as err:
            raise _member_error(file, info.filename, err) from err
    return [info.filename for info in infos]
