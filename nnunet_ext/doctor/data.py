"""Data checks: junk files, unreadable files, label values, image/label pairing, channel suffixes.

Every data file is checked by actually reading it to the end (``.npz`` members decompressed,
``.b2nd`` arrays read, ``.pkl`` parsed without running code, images decoded), in parallel over
files. Nothing is modified here; :func:`remove_junk` deletes only AppleDouble and ``.DS_Store``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from nnunet_ext._parallel import Executor, map_cases
from nnunet_ext.doctor.datasets import find_dataset_folders
from nnunet_ext.doctor.files import Job, _file_job, check_file
from nnunet_ext.doctor.findings import Finding, is_junk
from nnunet_ext.doctor.raw import check_raw_dataset

__all__ = ["remove_junk", "scan_data"]

logger = logging.getLogger(__name__)

_JUNK_FIX = "delete it (`nnunet-ext doctor --fix` deletes these files and nothing else)"


def _walk(folder: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def scan_data(
    roots: Mapping[str, str | os.PathLike[str]],
    *,
    dataset: str | int | None = None,
    num_workers: int = 1,
    executor: Executor | None = None,
) -> tuple[list[Finding], int]:
    """Scan nnU-Net folders for junk, damaged files and raw-dataset problems.

    Args:
        roots: Name to folder, e.g. ``{"nnUNet_raw": ..., "nnUNet_results": ...}``. A key
            ``nnUNet_raw`` gets the raw-dataset layout and label checks.
        dataset: One dataset (ID or name) instead of all.
        num_workers: Processes reading files in parallel.
        executor: Where the files are read (default: local, ``num_workers`` processes).

    Returns:
        ``(findings, files_checked)``: problems only (no ``ok`` findings), in path order.

    Raises:
        NotADirectoryError: If a root is not a folder.
        ValueError: If ``dataset`` matches nothing, or ``num_workers`` < 1.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1; got {num_workers}.")
    folders: dict[str, Path] = {}
    for name, root in roots.items():
        path = Path(root)
        if not path.is_dir():
            raise NotADirectoryError(f"{name} must be an existing folder; got {str(path)!r}.")
        folders[name] = path
    per_root = find_dataset_folders(folders, dataset)
    findings: list[Finding] = []
    jobs: list[Job] = []
    for name, root in folders.items():
        area = {"nnUNet_raw": "raw", "nnUNet_preprocessed": "preprocessed"}.get(name, "results")
        trees = per_root[name] if dataset is not None else [root]
        raw_jobs: set[str] = set()
        if area == "raw":
            for folder in per_root[name]:
                layout, read = check_raw_dataset(folder)
                findings.extend(layout)
                jobs.extend(read)
                raw_jobs.update(job[1] for job in read)
        for tree in trees:
            _scan_tree(tree, area, raw_jobs, findings, jobs)
    logger.info("reading %d files with %d worker(s)", len(jobs), num_workers)
    for result in map_cases(
        check_file, jobs, num_workers=num_workers, desc="doctor: reading files", executor=executor
    ):
        findings.extend(result)
    findings.sort(key=lambda f: (f.path or "", f.check))
    return findings, len(jobs)


def _scan_tree(
    tree: Path, area: str, raw_jobs: set[str], findings: list[Finding], jobs: list[Job]
) -> None:
    """Junk findings and read jobs for every file under ``tree`` (raw layout files excepted)."""
    for path in _walk(tree):
        if is_junk(path.name):
            what = (
                "macOS AppleDouble file (junk; nnU-Net may take it for a case and fail)"
                if path.name.startswith("._")
                else "macOS folder metadata (junk)"
            )
            findings.append(
                Finding(
                    "error",
                    "junk",
                    what,
                    path=str(path),
                    fix=_JUNK_FIX,
                )
            )
            continue
        if area == "raw":
            if str(path) in raw_jobs or path.parent.name in (
                "imagesTr",
                "labelsTr",
                "imagesTs",
            ):
                continue  # layout checks cover these
        job = _file_job(path, area)
        if job is not None:
            jobs.append(job)


def remove_junk(findings: Iterable[Finding]) -> list[Path]:
    """Delete the junk files (AppleDouble ``._*``, ``.DS_Store``) named in ``findings``.

    Only files whose name is junk (:func:`~nnunet_ext.doctor.findings.is_junk`) are removed,
    whatever the finding says; data files are never touched.

    Returns:
        The removed paths.
    """
    removed = []
    for finding in findings:
        if finding.check != "junk" or finding.path is None:
            continue
        path = Path(finding.path)
        if is_junk(path.name) and path.is_file() and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed
