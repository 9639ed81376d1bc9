"""Build a challenge submission zip from a prediction folder; refuse anything a server would.

The zip is flat (file names only), holds only label files, one per expected case, each
``uint8`` with labels in the allowed set and the geometry of its test image. It is
deterministic: entries sorted, fixed timestamps (1980-01-01) and permissions (0644), NIfTI
gzip streams without a timestamp, so the same inputs give a byte-identical zip. The zip is
written under a temporary name, checked with :func:`check_submission`, and renamed only when
every check passes: on any problem no zip is left behind.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ext.io import (
    TEMP_PREFIX,
    InputError,
    LabelImage,
    as_exact_labels,
    atomic_path,
    list_case_files,
    load_dataset_json,
    read_labels,
    verify_image_complete,
    write_json,
    write_labels,
)
from nnunet_ext.io.labels import MAX_UINT8_LABEL
from nnunet_ext.submission.checker import (
    SubmissionError,
    SubmissionReport,
    _image_geometry,
    check_submission,
    expected_cases,
    geometry_problems,
    name_pattern,
    pattern_name,
)
from nnunet_ext.submission.manifest import absent_label_warnings, manifest_dict, report_text
from nnunet_ext.submission.preview import mid_slice, render_preview

__all__ = ["ZIP_DATE_TIME", "build_submission", "remap_labels", "write_deterministic_zip"]

logger = logging.getLogger(__name__)

#: Timestamp of every zip entry (the earliest a zip can store).
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def remap_labels(
    labels: np.ndarray[Any, Any], label_map: Mapping[int, int]
) -> np.ndarray[Any, Any]:
    """Replace label values by ``label_map`` (values not in it stay as they are).

    Examples:
        >>> remap_labels(np.array([0, 1, 2, 3], dtype=np.uint8), {1: 2, 2: 1})
        array([0, 2, 1, 3], dtype=uint8)
    """
    if not label_map:
        return np.array(labels, copy=True)
    size = max(int(labels.max()) if labels.size else 0, *label_map) + 1
    table = np.arange(size, dtype=np.int64)
    for old, new in label_map.items():
        table[old] = new
    return as_exact_labels(table[labels])


def write_deterministic_zip(
    files: Iterable[tuple[str, Path]], path: str | os.PathLike[str]
) -> None:
    """Write ``(name, source)`` pairs into a flat zip: sorted, fixed time and mode, no extras.

    Gzip files are stored as they are; other files are deflated.
    """
    with zipfile.ZipFile(path, "w") as archive:
        for name, source in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            info.compress_type = (
                zipfile.ZIP_STORED if name.endswith(".gz") else zipfile.ZIP_DEFLATED
            )
            archive.writestr(info, source.read_bytes())


def _label_set(
    label_ids: Iterable[int] | None, label_map: Mapping[int, int], prediction_dir: Path
) -> tuple[int, ...]:
    dataset_json = prediction_dir / "dataset.json"
    defined: set[int] | None = None
    if dataset_json.is_file():
        spec = load_dataset_json(dataset_json)
        defined = {label_map.get(v, v) for v in spec.labels.values() if isinstance(v, int)}
        if spec.ignore_label is not None:
            defined.discard(label_map.get(spec.ignore_label, spec.ignore_label))
    if label_ids is not None:
        ids = {int(v) for v in label_ids}
        _check_uint8(ids)
        undefined = sorted(ids - (defined or set()) - {0})
        if defined is not None and undefined:
            shown = "after label_map " if label_map else ""
            raise InputError(
                "label_ids",
                f"label values {shown}that {dataset_json} defines ({sorted(defined)})",
                ", ".join(map(str, undefined)),
                fix="Pass only defined labels (or map them with label_map).",
            )
    elif defined is not None:
        ids = defined
    else:
        raise ValueError(
            f"label_ids must be given (e.g. [0, 1, 2]) when {str(prediction_dir)!r} has no "
            "dataset.json to take them from."
        )
    _check_uint8(ids)
    return tuple(sorted(ids | {0}))


def _check_uint8(ids: Iterable[int]) -> None:
    bad = sorted(v for v in ids if not 0 <= v <= MAX_UINT8_LABEL)
    if bad:
        raise ValueError(f"label_ids must be in 0..{MAX_UINT8_LABEL} (uint8); got {bad}.")


def _check_label_map(label_map: Mapping[int, int] | None) -> dict[int, int]:
    out: dict[int, int] = {}
    for old, new in (label_map or {}).items():
        for value in (old, new):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not 0 <= value <= MAX_UINT8_LABEL
            ):
                raise ValueError(
                    f"label_map values must be ints in 0..{MAX_UINT8_LABEL}; got {old!r}: {new!r}."
                )
        out[int(old)] = int(new)
    return out


def build_submission(
    prediction_dir: str | os.PathLike[str],
    output_zip: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str],
    label_ids: Iterable[int] | None = None,
    label_map: Mapping[int, int] | None = None,
    name_template: str = "{case}",
    file_ending: str = ".nii.gz",
    preview: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    absent_fraction: float = 0.5,
) -> SubmissionReport:
    """Build and check a submission zip, plus ``<stem>.manifest.json`` and ``<stem>.report.txt``.

    Args:
        prediction_dir: Folder with one ``CASE<file_ending>`` per case (e.g. nnU-Net output;
            ``.npz``, ``.pkl`` and ``.json`` files there are ignored). Not modified.
        output_zip: Destination ``.zip``.
        images_dir: Test images ``CASE_0000<file_ending>``; they define the expected cases and
            the geometry each label file must have.
        label_ids: Allowed label values after remapping (0 always allowed); default: the labels
            of ``prediction_dir/dataset.json`` passed through ``label_map``.
        label_map: Old value to new value, for challenges with other label IDs.
        name_template: File name (without ending) from the case ID, e.g. ``"{case}_seg"``.
        file_ending: Label file ending.
        preview: Optional PNG path for a contact sheet of mid-slices with label overlays.
        overwrite: Replace an existing ``output_zip``.
        absent_fraction: Warn when a label is absent in at least this fraction of the cases.

    Returns:
        The :class:`SubmissionReport` of the final zip.

    Raises:
        NotADirectoryError: If a folder is missing.
        FileExistsError: If ``output_zip`` exists and not ``overwrite``.
        SubmissionError: Listing every problem by case (missing, unknown, bad values, geometry);
            no zip is written.
    """
    source = Path(prediction_dir)
    target = Path(output_zip)
    _check_paths(source, target, overwrite)
    mapping = _check_label_map(label_map)
    allowed = _label_set(label_ids, mapping, source)
    name_pattern(name_template, file_ending)
    expected = expected_cases(images_dir, file_ending=file_ending)
    predicted, _ = list_case_files(source, file_ending)

    problems = _case_set_problems(predicted, expected, file_ending, source)
    report, panels = _write_checked_zip(
        source,
        target,
        predicted,
        expected,
        problems,
        images_dir=images_dir,
        mapping=mapping,
        allowed=allowed,
        name_template=name_template,
        file_ending=file_ending,
        keep_panels=preview is not None,
    )
    report = dataclasses.replace(report, zip_path=target)
    report = dataclasses.replace(
        report, warnings=tuple(absent_label_warnings(report, fraction=absent_fraction))
    )
    for warning in report.warnings:
        logger.warning("%s", warning)
    _write_manifest_and_report(report, target, mapping, name_template)
    if preview is not None:
        _write_preview(panels, Path(preview))
    return report


def _write_checked_zip(
    source: Path,
    target: Path,
    predicted: Mapping[str, Path],
    expected: Mapping[str, Path],
    problems: list[str],
    *,
    images_dir: str | os.PathLike[str],
    mapping: Mapping[int, int],
    allowed: tuple[int, ...],
    name_template: str,
    file_ending: str,
    keep_panels: bool,
) -> tuple[SubmissionReport, list[tuple[str, Path, np.ndarray[Any, Any]]]]:
    """Remap and write every case, zip them at ``target`` and check the zip.

    Returns:
        The check's report and, with ``keep_panels``, each case's image and remapped labels.

    Raises:
        SubmissionError: With ``problems`` and each case's own; no zip is written.
    """
    panels = []
    # scratch beside the zip, under our temporary prefix: a killed build leaves nothing that
    # the next run into this folder does not remove (nnunet_ext.io.outputs)
    with tempfile.TemporaryDirectory(
        prefix=f"{TEMP_PREFIX}submission-", dir=target.parent
    ) as scratch:
        files: list[tuple[str, Path]] = []
        for case in sorted(set(predicted) & set(expected)):
            found, labels, mapped = _remapped_case(
                case, predicted[case], expected[case], mapping, allowed
            )
            if found or labels is None:
                problems.extend(found)
                continue
            name = pattern_name(name_template, case, file_ending)
            write_labels(mapped, Path(scratch) / name, like=labels, exact_nifti_header=True)
            files.append((name, Path(scratch) / name))
            if keep_panels:
                panels.append((case, expected[case], mapped))
        if problems:
            raise SubmissionError(problems, what=str(source), note="; no zip was written")
        with atomic_path(target) as tmp:
            write_deterministic_zip(files, tmp)
            report = check_submission(
                tmp,
                images_dir=images_dir,
                label_ids=allowed,
                name_template=name_template,
                file_ending=file_ending,
            )
    return report, panels


def _case_set_problems(
    predicted: Mapping[str, Path], expected: Mapping[str, Path], file_ending: str, source: Path
) -> list[str]:
    """Prediction files without a test image, and test images without a prediction."""
    return [
        *(
            f"{case}: unknown case file {predicted[case].name} "
            f"(no test image {case}_0000{file_ending})"
            for case in sorted(set(predicted) - set(expected))
        ),
        *(
            f"{case}: missing (no {case}{file_ending} in {source})"
            for case in sorted(set(expected) - set(predicted))
        ),
    ]


def _check_paths(source: Path, target: Path, overwrite: bool) -> None:
    if not source.is_dir():
        raise NotADirectoryError(
            f"prediction_dir must be a folder of label files; got {str(source)!r}."
        )
    if target.suffix != ".zip":
        raise ValueError(f"output_zip must end with .zip; got {str(target)!r}.")
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"output_zip {str(target)!r} exists; pass overwrite=True to replace it."
        )
    if not target.parent.is_dir():
        raise NotADirectoryError(
            f"the folder of output_zip must exist; got {str(target.parent)!r}."
        )


def _remapped_case(
    case: str, path: Path, image: Path, mapping: Mapping[int, int], allowed: Iterable[int]
) -> tuple[list[str], LabelImage | None, np.ndarray[Any, Any]]:
    """One case's problems (label values, geometry), its labels and its remapped labels.

    A damaged file stops the build (``InputError``); an unreadable label map is a problem.
    """
    verify_image_complete(path)
    try:
        labels = read_labels(path, verify=False)
    except ValueError as err:
        return [f"{case}: {err}"], None, np.zeros(0, np.uint8)
    mapped = remap_labels(labels.array, mapping)
    found = []
    extra = sorted(set(np.unique(mapped).tolist()) - set(allowed))
    if extra:
        shown = "after remapping " if mapping else ""
        found.append(f"label value(s) {extra} {shown}are not allowed (allowed: {list(allowed)})")
    found.extend(geometry_problems(labels, _image_geometry(image)))
    return [f"{case}: {p} ({path.name})" for p in found], labels, mapped


def _write_manifest_and_report(
    report: SubmissionReport, target: Path, mapping: Mapping[int, int], name_template: str
) -> None:
    """``<zip stem>.manifest.json`` and ``<zip stem>.report.txt`` beside the zip."""
    stem = target.with_suffix("")
    write_json(
        stem.with_name(stem.name + ".manifest.json"),
        manifest_dict(report, zip_path=target, label_map=mapping, name_template=name_template),
    )
    report_path = stem.with_name(stem.name + ".report.txt")
    with atomic_path(report_path) as tmp:
        tmp.write_text(report_text(report), encoding="utf-8")


def _write_preview(panels: list[tuple[str, Path, np.ndarray[Any, Any]]], path: Path) -> None:
    import SimpleITK

    sitk: Any = SimpleITK
    rendered = []
    for case, image_path, labels in panels:
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path)))
        rendered.append((case, mid_slice(image), mid_slice(labels)))
    render_preview(rendered, path)
