"""Case files: the case ID in a file name, a folder's cases, one case's files across folders.

nnU-Net names a case's files ``CASE<ending>`` (``CASE.nii.gz``, ``CASE.npz``), and some exports
double the ending (``CASE.nii.gz.npz``); hidden files (``._CASE.npz``, ``.DS_Store``, our
temporaries) are never cases.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PairedCases",
    "case_id_from_filename",
    "is_hidden",
    "list_case_files",
    "pair_probability_files",
]


def is_hidden(name: str) -> bool:
    """Tell whether a file name is hidden junk to skip (``._CASE.npz``, ``.DS_Store``, temps).

    Examples:
        >>> [is_hidden(n) for n in ["._case.npz", ".DS_Store", "case.npz"]]
        [True, True, False]
    """
    return name.startswith(".")


def case_id_from_filename(name: str, ending: str) -> str:
    """Strip ``ending`` from a file name, also after a doubled ending (``CASE.nii.gz.npz``).

    Args:
        name: A file name such as ``"case_001.npz"`` or ``"case_001.nii.gz.npz"``.
        ending: The ending to strip, e.g. ``".npz"``.

    Returns:
        The case identifier.

    Examples:
        >>> case_id_from_filename("case_001.nii.gz.npz", ".npz")
        'case_001'
        >>> case_id_from_filename("case_001.npz", ".npz")
        'case_001'
    """
    if not name.endswith(ending):
        raise ValueError(f"{name!r} does not end with {ending!r}.")
    stem = name[: -len(ending)]
    for image_ending in (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".tif", ".tiff"):
        if stem.endswith(image_ending):
            return stem[: -len(image_ending)]
    return stem


def list_case_files(
    folder: str | os.PathLike[str], ending: str
) -> tuple[dict[str, Path], list[Path]]:
    """Map case IDs to files with ``ending`` in ``folder``, skipping hidden files.

    Args:
        folder: Folder to scan (not recursive).
        ending: File ending, e.g. ``".npz"`` or ``".nii.gz"``.

    Returns:
        ``(cases, ignored)``: case ID to path (sorted by ID), and the hidden files skipped.

    Raises:
        NotADirectoryError: If ``folder`` is not a directory.
        ValueError: If two files map to the same case (``A.npz`` and ``A.nii.gz.npz``).
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    cases: dict[str, Path] = {}
    ignored: list[Path] = []
    for entry in sorted(root.iterdir()):
        if not entry.name.endswith(ending) or not entry.is_file():
            continue
        if is_hidden(entry.name):
            ignored.append(entry)
            continue
        case = case_id_from_filename(entry.name, ending)
        if case in cases:
            raise ValueError(
                f"{root}: case {case!r} appears twice ({cases[case].name} and {entry.name}); "
                "keep one of them."
            )
        cases[case] = entry
    return dict(sorted(cases.items())), ignored


@dataclass(frozen=True)
class PairedCases:
    """Probability files of several folders, paired by case ID.

    Attributes:
        input_dirs: The folders, in the order given.
        cases: Case ID to one path per folder (``None`` where the folder lacks the case).
        ignored: Hidden files skipped (``._CASE.npz``, ``.DS_Store``, temporaries).
    """

    input_dirs: tuple[Path, ...]
    cases: dict[str, tuple[Path | None, ...]]
    ignored: tuple[Path, ...]

    @property
    def missing(self) -> dict[str, tuple[Path, ...]]:
        """Case ID to the folders that lack it (only incomplete cases)."""
        return {
            case: tuple(d for d, p in zip(self.input_dirs, paths, strict=True) if p is None)
            for case, paths in self.cases.items()
            if any(p is None for p in paths)
        }


def pair_probability_files(input_dirs: Sequence[str | os.PathLike[str]]) -> PairedCases:
    """Pair ``CASE.npz`` / ``CASE.nii.gz.npz`` files across folders by case ID.

    Args:
        input_dirs: Prediction folders.

    Returns:
        The pairing; use :attr:`PairedCases.missing` to find incomplete cases.

    Raises:
        NotADirectoryError: If a folder does not exist.
        ValueError: If a folder has no ``.npz`` at all, or one case twice.
    """
    folders = tuple(Path(d) for d in input_dirs)
    per_folder: list[dict[str, Path]] = []
    ignored: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise NotADirectoryError(f"input folder not found: {folder}")
        cases, skipped = list_case_files(folder, ".npz")
        if not cases:
            raise ValueError(
                f"{folder}: no .npz probability files found. Predict with "
                "nnUNetv2_predict --save_probabilities (or train with nnUNetv2_train --npz "
                "and use fold_k/validation)."
            )
        per_folder.append(cases)
        ignored.extend(skipped)
    all_cases = sorted(set().union(*per_folder))
    paired = {case: tuple(found.get(case) for found in per_folder) for case in all_cases}
    return PairedCases(input_dirs=folders, cases=paired, ignored=tuple(ignored))
