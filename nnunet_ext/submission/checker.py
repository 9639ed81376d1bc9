"""Check a submission zip as a challenge server would, plus what servers miss.

Checks, each reported per case (or per zip entry):

* the zip is flat: no folders, no ``__MACOSX``, ``._*``, ``.DS_Store`` or other hidden entries;
* only label files (the file ending, e.g. ``.nii.gz``; no json, npz, pkl);
* every expected case exactly once: IDs come from the test images (``CASE_0000.nii.gz`` ->
  ``CASE``), and missing, unknown and duplicate IDs are reported;
* each file is stored as ``uint8``, its labels are within the allowed set, and its shape,
  spacing, origin and direction equal its test image's (spacing and origin within 1e-4 mm plus
  1e-5 relative, direction within 1e-5: NIfTI stores them as float32).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ext.io import read_labels
from nnunet_ext.io.zips import read_zip_member, verify_zip

__all__ = [
    "GEOMETRY_ATOL",
    "GEOMETRY_RTOL",
    "CaseSummary",
    "SubmissionError",
    "SubmissionReport",
    "check_submission",
    "expected_cases",
]

logger = logging.getLogger(__name__)

#: Absolute tolerance (mm) on spacing and origin, and on direction cosines.
GEOMETRY_ATOL = 1e-4
#: Relative tolerance on spacing and origin.
GEOMETRY_RTOL = 1e-5
_DIRECTION_ATOL = 1e-5
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


class SubmissionError(ValueError):
    """A submission has problems; ``problems`` lists them, one line each, by case."""

    def __init__(self, problems: Sequence[str], *, what: str, note: str = "") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{what} has {len(self.problems)} problem(s){note}:\n{lines}")


@dataclass(frozen=True)
class CaseSummary:
    """One label file of a submission.

    Attributes:
        case: Case ID (from the test image name).
        name: File name inside the zip.
        sha256: Hex digest of the file bytes.
        size_bytes: File size.
        label_voxels: Label value to voxel count (labels present only).
    """

    case: str
    name: str
    sha256: str
    size_bytes: int
    label_voxels: dict[int, int]


@dataclass(frozen=True)
class SubmissionReport:
    """The outcome of a check: the files and the label set checked against."""

    zip_path: Path
    cases: tuple[CaseSummary, ...]
    label_ids: tuple[int, ...] | None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def expected_cases(
    images_dir: str | os.PathLike[str], *, file_ending: str = ".nii.gz"
) -> dict[str, Path]:
    """Map case IDs to their first-channel test image (``CASE_0000.nii.gz`` -> ``CASE``).

    Args:
        images_dir: Folder of test images in nnU-Net naming (``CASE_XXXX`` + ending).
        file_ending: The image file ending.

    Returns:
        Case ID to the image with the lowest channel number, sorted by ID.

    Raises:
        NotADirectoryError: If ``images_dir`` is not a folder.
        ValueError: If it holds no image named ``CASE_XXXX<ending>``.
    """
    folder = Path(images_dir)
    if not folder.is_dir():
        raise NotADirectoryError(
            f"images_dir must be a folder of test images; got {str(folder)!r}."
        )
    found: dict[str, tuple[str, Path]] = {}
    for entry in sorted(folder.iterdir()):
        if (
            entry.name.startswith(".")
            or not entry.name.endswith(file_ending)
            or not entry.is_file()
        ):
            continue
        match = _CHANNEL.match(entry.name[: -len(file_ending)])
        if match is None:
            continue
        case, channel = match["case"], match["channel"]
        if case not in found or channel < found[case][0]:
            found[case] = (channel, entry)
    if not found:
        raise ValueError(
            f"images_dir {str(folder)!r} holds no test images named CASE_0000{file_ending}; "
            "pass the folder given to nnUNetv2_predict -i."
        )
    return {case: path for case, (_, path) in sorted(found.items())}


def name_pattern(name_template: str, file_ending: str) -> re.Pattern[str]:
    """Return a regex that recovers ``case`` from a file named by ``name_template``.

    Examples:
        >>> name_pattern("{case}_seg", ".nii.gz").match("a_01_seg.nii.gz")["case"]
        'a_01'
    """
    if name_template.count("{case}") != 1 or "/" in name_template or "\\" in name_template:
        raise ValueError(
            "name_template must contain '{case}' exactly once and no folder; "
            f"got {name_template!r}."
        )
    before, after = name_template.split("{case}")
    return re.compile(f"^{re.escape(before)}(?P<case>.+){re.escape(after + file_ending)}$")


def _image_geometry(path: Path) -> dict[str, tuple[float, ...]]:
    import SimpleITK

    sitk: Any = SimpleITK
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise ValueError(
            f"{path}: cannot read test image ({str(err).strip().splitlines()[0]})."
        ) from err
    return {
        "shape": tuple(int(s) for s in reversed(reader.GetSize())),
        "spacing": tuple(reader.GetSpacing()),
        "origin": tuple(reader.GetOrigin()),
        "direction": tuple(reader.GetDirection()),
    }


def geometry_problems(labels: Any, image: Mapping[str, tuple[float, ...]]) -> list[str]:
    """Compare a :class:`~nnunet_ext.io.LabelImage` with a test image's geometry."""
    problems = []
    if tuple(labels.array.shape) != tuple(image["shape"]):
        problems.append(
            f"shape {tuple(labels.array.shape)} must equal the test image's {image['shape']}"
        )
        return problems
    for key, atol, rtol in (
        ("spacing", GEOMETRY_ATOL, GEOMETRY_RTOL),
        ("origin", GEOMETRY_ATOL, GEOMETRY_RTOL),
        ("direction", _DIRECTION_ATOL, 0.0),
    ):
        mine, theirs = getattr(labels, key), image[key]
        if len(mine) != len(theirs) or not np.allclose(mine, theirs, atol=atol, rtol=rtol):
            shown = tuple(round(v, 6) for v in mine), tuple(round(v, 6) for v in theirs)
            problems.append(f"{key} {shown[0]} must equal the test image's {shown[1]}")
    return problems


def check_label_file(
    path: Path,
    *,
    case: str,
    image: Path,
    label_ids: Iterable[int] | None,
) -> tuple[list[str], dict[int, int]]:
    """Check one extracted label file; return (problems, label voxel counts)."""
    try:
        labels = read_labels(path)
    except ValueError as err:
        return [f"{case}: {str(err).replace(str(path), path.name)}"], {}
    problems = []
    if labels.stored_dtype != "uint8":
        problems.append(f"{case}: stored as {labels.stored_dtype}; must be uint8")
    values, counts = np.unique(labels.array, return_counts=True)
    if label_ids is not None:
        extra = sorted(set(values.tolist()) - set(label_ids) - {0})
        if extra:
            problems.append(
                f"{case}: label value(s) {extra} are not allowed "
                f"(allowed: {sorted(set(label_ids) | {0})})"
            )
    problems.extend(f"{case}: {p}" for p in geometry_problems(labels, _image_geometry(image)))
    return problems, {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def _entry_problems(
    names: Sequence[str], pattern: re.Pattern[str], file_ending: str
) -> tuple[list[str], dict[str, str]]:
    """Check zip entry names; return (problems, case -> entry name for plausible label files)."""
    problems: list[str] = []
    by_case: dict[str, str] = {}
    seen: set[str] = set()
    for name in names:
        base = name.rstrip("/").rsplit("/", 1)[-1]
        if name.endswith("/"):
            problems.append(
                f"{name}: folder entry; the zip must be flat (zip the files, not the folder)"
            )
            continue
        if name.startswith("__MACOSX/") or base.startswith("._") or base == ".DS_Store":
            problems.append(
                f"{name}: macOS metadata; remove it (zip with 'zip -X' or use this builder)"
            )
            continue
        if base.startswith("."):
            problems.append(f"{name}: hidden file; remove it")
            continue
        if "/" in name:
            problems.append(
                f"{name}: inside a folder; the zip must be flat (zip the files, not the folder)"
            )
        if not base.endswith(file_ending):
            problems.append(f"{name}: not a label file (expected only *{file_ending})")
            continue
        match = pattern.match(base)
        if match is None:
            problems.append(
                f"{name}: name does not follow the expected pattern {pattern.pattern!r}"
            )
            continue
        if base in seen or match["case"] in by_case:
            problems.append(f"{match['case']}: duplicate file {name}")
            continue
        seen.add(base)
        by_case[match["case"]] = name
    return problems, by_case


def check_submission(
    zip_path: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str],
    label_ids: Iterable[int] | None = None,
    name_template: str = "{case}",
    file_ending: str = ".nii.gz",
) -> SubmissionReport:
    """Run every submission check on a zip (built here or by hand).

    Args:
        zip_path: The submission zip.
        images_dir: The test images (``CASE_0000.nii.gz``); they define the expected cases.
        label_ids: Allowed label values (0 is always allowed); ``None`` skips that check.
        name_template: How files are named from a case ID, e.g. ``"{case}_seg"``.
        file_ending: Label file ending.

    Returns:
        A :class:`SubmissionReport` when everything passes.

    Raises:
        FileNotFoundError: If ``zip_path`` does not exist.
        SubmissionError: Listing every problem by case.
    """
    path = Path(zip_path)
    if not path.is_file():
        raise FileNotFoundError(f"zip_path not found: {str(path)!r}")
    verify_zip(path)  # every member inflated, CRC-32 checked, before any other work
    allowed = None if label_ids is None else tuple(sorted({int(v) for v in label_ids}))
    expected = expected_cases(images_dir, file_ending=file_ending)
    pattern = name_pattern(name_template, file_ending)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        problems, by_case = _entry_problems(names, pattern, file_ending)
        for case in sorted(set(by_case) - set(expected)):
            problems.append(
                f"{case}: unknown case file {by_case[case]} "
                f"(no test image {case}_0000{file_ending})"
            )
        for case in sorted(set(expected) - set(by_case)):
            problems.append(
                f"{case}: missing (expected {pattern_name(name_template, case, file_ending)})"
            )
        summaries = []
        with tempfile.TemporaryDirectory(prefix="nnunet_ext-check-") as scratch:
            for case in sorted(set(by_case) & set(expected)):
                data = read_zip_member(archive, by_case[case], path)
                file = Path(scratch) / f"{case}{file_ending}"
                file.write_bytes(data)
                found, voxels = check_label_file(
                    file, case=case, image=expected[case], label_ids=allowed
                )
                problems.extend(found)
                summaries.append(
                    CaseSummary(
                        case, by_case[case], hashlib.sha256(data).hexdigest(), len(data), voxels
                    )
                )
    if problems:
        raise SubmissionError(problems, what=str(path))
    return SubmissionReport(zip_path=path, cases=tuple(summaries), label_ids=allowed)


def pattern_name(name_template: str, case: str, file_ending: str) -> str:
    """Return the file name of ``case`` under ``name_template``.

    Examples:
        >>> pattern_name("{case}_seg", "a", ".nii.gz")
        'a_seg.nii.gz'
    """
    return name_template.replace("{case}", case) + file_ending
