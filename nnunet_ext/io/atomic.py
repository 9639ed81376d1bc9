"""Write files so that a reader never sees half of one: temporary name, then ``os.replace``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "TEMP_PREFIX",
    "atomic_path",
    "to_strict_json",
    "write_json",
]

#: Prefix of every temporary file we write. Hidden (leading dot), so folder scans skip it.
TEMP_PREFIX = ".nnunet_ext-tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    The temporary name keeps the full file name as its tail (``.nnunet_ext-tmp-<id>-case.nii.gz``),
    so writers that choose the format from the ending (SimpleITK, nibabel) behave exactly as
    for ``path``. On an exception the temporary file is removed and ``path`` is left untouched.

    Args:
        path: Final destination. Its folder must exist.

    Yields:
        The temporary path to write to.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_path(folder / "a.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (folder / "a.txt").read_text()
        'done'
    """
    final = Path(path)
    tmp = final.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{final.name}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def to_strict_json(value: Any) -> Any:
    """Return ``value`` with NaN and infinities replaced by ``None`` and numpy scalars unwrapped.

    Strict JSON has no ``NaN`` token; Python's ``json`` writes one by default (nnU-Net's
    ``summary.json`` does), and many parsers reject it.

    Args:
        value: Nested dicts, lists, tuples, numbers, strings and numpy scalars or arrays.

    Returns:
        The same structure with only JSON-native types.

    Examples:
        >>> to_strict_json({"dice": float("nan"), "n": [1.5, float("inf")]})
        {'dice': None, 'n': [1.5, None]}
    """
    if isinstance(value, Mapping):
        return {str(k): to_strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_strict_json(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return to_strict_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write ``data`` as strict, indented JSON, atomically.

    Args:
        path: Destination file.
        data: The object to write; NaN and infinities become ``null``.

    Returns:
        The destination path.
    """
    final = Path(path)
    text = json.dumps(to_strict_json(data), indent=2, sort_keys=False, allow_nan=False)
    with atomic_path(final) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return final
