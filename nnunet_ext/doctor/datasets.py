"""nnU-Net dataset folders (``DatasetXXX_Name``): finding them by ID or name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["find_dataset_folders"]

_DATASET = re.compile(r"^Dataset(\d{3})_(.+)$")


def find_dataset_folders(
    roots: Mapping[str, Path], dataset: str | int | None
) -> dict[str, list[Path]]:
    """Return, per root, the dataset folders to scan (all ``Dataset*`` or the one asked for).

    Args:
        roots: Root name (``nnUNet_raw``, ...) to folder; only existing folders are used.
        dataset: An ID (``501`` / ``"501"``), a folder name (``"Dataset501_Heart"``), a dataset
            name (``"Heart"``), or ``None`` for every dataset.

    Raises:
        ValueError: If ``dataset`` matches no folder in any root.
    """
    found: dict[str, list[Path]] = {}
    available: set[str] = set()
    for name, root in roots.items():
        folders = sorted(p for p in root.iterdir() if p.is_dir() and _DATASET.match(p.name))
        available.update(p.name for p in folders)
        found[name] = [p for p in folders if dataset is None or _matches(p.name, dataset)]
    if dataset is not None and not any(found.values()):
        listing = ", ".join(sorted(available)[:10]) or "none"
        raise ValueError(
            f"dataset {str(dataset)!r} matches no Dataset folder in "
            f"{', '.join(str(r) for r in roots.values())}; available: {listing}."
        )
    return found


def _matches(folder: str, dataset: str | int) -> bool:
    match = _DATASET.match(folder)
    if match is None:
        return False
    text = str(dataset).strip()
    if text.isdigit():
        return int(text) == int(match.group(1))
    return text in (folder, match.group(2))


def _dataset_id(path: Path) -> str:
    for part in reversed(path.parts):
        match = _DATASET.match(part)
        if match:
            return str(int(match.group(1)))
    return "DATASET_ID"
