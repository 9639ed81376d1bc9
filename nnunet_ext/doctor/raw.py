"""Check a raw dataset's layout: ``dataset.json``, channel suffixes, image/label pairing.

The checks that need no file content; the image and label files found are returned as read
jobs for :func:`~nnunet_ext.doctor.files.check_file`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from nnunet_ext.doctor.files import Job
from nnunet_ext.doctor.findings import Finding
from nnunet_ext.io import LabelSpec, list_case_files, load_json

__all__ = ["check_raw_dataset"]

_CHANNEL = re.compile(r"^(.+)_(\d{4})$")


def check_raw_dataset(folder: Path) -> tuple[list[Finding], list[Job]]:
    """Check a raw dataset's layout and list its image and label files for reading.

    Checks ``dataset.json``, channel suffixes (``CASE_XXXX`` with XXXX in ``channel_names``),
    that every training case has all channels and a label, and that every label has an image.

    Returns:
        The layout findings and the read jobs (images, labels with their declared values).
    """
    findings: list[Finding] = []
    jobs: list[Job] = []
    dataset_json = folder / "dataset.json"
    try:
        data = load_json(dataset_json)
        if not isinstance(data, dict):
            raise ValueError(f"{dataset_json}: must hold a JSON object.")
        spec = LabelSpec.from_dataset_json(data, source=str(dataset_json))
    except (FileNotFoundError, ValueError) as err:
        findings.append(
            Finding(
                "error",
                "dataset",
                str(err),
                path=str(dataset_json),
                fix="write a dataset.json as described in nnU-Net's dataset_format.md",
            )
        )
        return findings, jobs
    channels = data.get("channel_names", data.get("modality"))
    num_channels = len(channels) if isinstance(channels, dict) and channels else 1
    ending = spec.file_ending
    declared = sorted(
        {
            v
            for value in spec.labels.values()
            for v in (value if isinstance(value, tuple) else (value,))
        }
    )
    image_cases = _check_images(folder, ending, num_channels, findings, jobs)
    if _check_labels(folder, ending, declared, image_cases, findings, jobs):
        num_training = data.get("numTraining")
        if isinstance(num_training, int) and image_cases and num_training != len(image_cases):
            findings.append(
                Finding(
                    "warning",
                    "dataset",
                    f"numTraining is {num_training} but imagesTr holds {len(image_cases)} cases",
                    path=str(dataset_json),
                    fix=f"set numTraining to {len(image_cases)}",
                )
            )
    return findings, jobs


def _check_images(
    folder: Path, ending: str, num_channels: int, findings: list[Finding], jobs: list[Job]
) -> dict[str, set[int]]:
    """Read jobs and findings for imagesTr and imagesTs; the channels per training case."""
    image_cases: dict[str, set[int]] = {}
    for sub in ("imagesTr", "imagesTs"):
        images = folder / sub
        if images.is_dir():
            cases = _check_image_folder(images, ending, num_channels, findings, jobs)
            if sub == "imagesTr":
                image_cases = cases
        elif sub == "imagesTr":
            findings.append(
                Finding(
                    "error",
                    "dataset",
                    "imagesTr folder is missing",
                    path=str(images),
                    fix="put the training images there",
                )
            )
    for case, present in sorted(image_cases.items()):
        missing = sorted(set(range(num_channels)) - present)
        if missing:
            names = ", ".join(f"{case}_{c:04d}{ending}" for c in missing)
            findings.append(
                Finding(
                    "error",
                    "channels",
                    f"case {case!r} lacks channel file(s) {names}",
                    path=str(folder / "imagesTr"),
                    fix="add the missing channel images",
                )
            )
    return image_cases


def _check_image_folder(
    images: Path, ending: str, num_channels: int, findings: list[Finding], jobs: list[Job]
) -> dict[str, set[int]]:
    """Read jobs and channel-suffix findings for one images folder; the channels per case."""
    image_cases: dict[str, set[int]] = {}
    files, _ = list_case_files(images, ending)
    for stem, path in files.items():
        jobs.append(("image", str(path), {"area": "raw"}))
        match = _CHANNEL.match(stem)
        if match is None:
            findings.append(
                Finding(
                    "error",
                    "channels",
                    f"image names must end with a 4-digit channel suffix (CASE_0000{ending})",
                    path=str(path),
                    fix=f"rename it to {stem}_0000{ending}",
                )
            )
            continue
        case, channel = match.group(1), int(match.group(2))
        if channel >= num_channels:
            findings.append(
                Finding(
                    "error",
                    "channels",
                    f"channel suffix _{channel:04d} but dataset.json declares {num_channels} "
                    f"channel(s) (_0000 to _{num_channels - 1:04d})",
                    path=str(path),
                    fix="rename it to its channel index or add the channel to channel_names",
                )
            )
            continue
        image_cases.setdefault(case, set()).add(channel)
    for other in sorted(images.iterdir()):
        if other.is_file() and not other.name.startswith(".") and not other.name.endswith(ending):
            findings.append(
                Finding(
                    "warning",
                    "dataset",
                    f"not a {ending} file (file_ending in dataset.json): nnU-Net ignores it",
                    path=str(other),
                    fix="convert it or move it elsewhere",
                )
            )
    return image_cases


def _check_labels(
    folder: Path,
    ending: str,
    declared: list[int],
    image_cases: Mapping[str, set[int]],
    findings: list[Finding],
    jobs: list[Job],
) -> bool:
    """Read jobs for labelsTr and image/label pairing findings; ``False`` if it is missing."""
    labels_dir = folder / "labelsTr"
    if not labels_dir.is_dir():
        findings.append(
            Finding(
                "error",
                "dataset",
                "labelsTr folder is missing",
                path=str(labels_dir),
                fix="put the training labels there",
            )
        )
        return False
    labels, _ = list_case_files(labels_dir, ending)
    for case, path in labels.items():
        jobs.append(("label", str(path), {"area": "raw", "declared": declared}))
        if image_cases and case not in image_cases:
            findings.append(
                Finding(
                    "error",
                    "pairing",
                    f"label without image: no {case}_0000{ending} in imagesTr",
                    path=str(path),
                    fix="add the image or remove the label",
                )
            )
    for case in sorted(set(image_cases) - set(labels)):
        findings.append(
            Finding(
                "error",
                "pairing",
                f"image without label: no {case}{ending} in labelsTr",
                path=str(folder / "imagesTr" / f"{case}_0000{ending}"),
                fix="add the label or move the image to imagesTs",
            )
        )
    return True
