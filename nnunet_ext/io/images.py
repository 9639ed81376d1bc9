"""An nnU-Net image folder as ``predict`` reads it: cases, channel files, checks before any work.

nnU-Net's image folders hold one file per case and channel, ``CASE_XXXX<file_ending>``
(``XXXX``: the 4-digit channel index). :func:`list_image_cases` lists them, refusing anything
named like an image that cannot be read (nothing is skipped silently), and
:func:`verify_images` reads every channel file to the end before any network loads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.labels import verify_image_complete
from nnunet_ext.io.models import ModelFolder

__all__ = ["CaseInput", "list_image_cases", "verify_images"]


@dataclass(frozen=True)
class CaseInput:
    """One case to predict: its channel files (``CASE_0000`` ...) in channel order."""

    case_id: str
    image_files: tuple[Path, ...]


def list_image_cases(input_dir: Path, file_ending: str, num_channels: int) -> tuple[CaseInput, ...]:
    """List the cases of an nnU-Net image folder (``CASE_XXXX<ending>``) and check channels.

    Ignored, as nnU-Net ignores them: hidden entries (``.DS_Store``, macOS ``._*`` files) and
    entries not named ``*<ending>`` (notes, other files). Every entry named like an image
    (``*<ending>``) must be a readable file named ``CASE_XXXX<ending>``: a broken link, a link
    loop, a folder or an unreadable file of that name is an error, never skipped.

    Raises:
        NotADirectoryError: If ``input_dir`` is not a folder.
        InputError: Naming an entry named like an image that cannot be read.
        ValueError: If a case lacks or has extra channel files, or no case is found.
    """
    if not input_dir.is_dir():
        raise NotADirectoryError(f"input_dir must be a folder of images; got {input_dir}.")
    pattern = re.compile(rf"(.+)_(\d{{4}}){re.escape(file_ending)}")
    channels: dict[str, dict[int, Path]] = {}
    for entry in sorted(input_dir.iterdir()):
        if entry.name.startswith(".") or not entry.name.endswith(file_ending):
            continue
        _check_readable(entry)
        match = pattern.fullmatch(entry.name)
        if not match:
            raise ValueError(
                f"image {entry} must be named CASE_XXXX{file_ending} (XXXX: the 4-digit channel "
                f"index); got {entry.name!r}. Rename it, or move it out of input_dir."
            )
        channels.setdefault(match.group(1), {})[int(match.group(2))] = entry
    if not channels:
        raise ValueError(
            f"input_dir {input_dir} holds no images named CASE_0000{file_ending} (the file "
            "ending comes from the model's dataset.json)."
        )
    cases = []
    expected = list(range(num_channels))
    for case_id, files in sorted(channels.items()):
        if sorted(files) != expected:
            raise ValueError(
                f"image {input_dir / (case_id + '_XXXX' + file_ending)} must have the model's "
                f"{num_channels} channel file(s) {case_id}_0000..{case_id}_{num_channels - 1:04d}"
                f"{file_ending}; got channel(s) {sorted(files)}. Give every case all channels "
                "the model was trained with."
            )
        cases.append(CaseInput(case_id, tuple(files[i] for i in expected)))
    return tuple(cases)


def _check_readable(entry: Path) -> None:
    """An entry named like an image must be a file that opens (links resolved)."""
    fix = "Repair or remove it (input folders are read whole; nothing is skipped)."
    try:
        entry.resolve(strict=True)
    except (OSError, RuntimeError) as err:  # a broken link, or a loop (RuntimeError < 3.13)
        what = "a link loop" if "loop" in str(err).lower() else "a broken link"
        raise InputError(entry, "a readable image file", what, fix=fix) from err
    if not entry.is_file():
        raise InputError(entry, "a readable image file", "a folder or special file", fix=fix)
    try:
        with open(entry, "rb") as handle:
            handle.read(1)
    except OSError as err:
        raise InputError(entry, "a readable image file", f"{err.strerror or err}", fix=fix) from err


#: File endings whose header SimpleITK reads without the voxels (for the dimension check).
_HEADER_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".gipl")


def verify_images(cases: Sequence[CaseInput], model: ModelFolder) -> None:
    """Check every channel file before any network loads: complete, scalar, of the right dimension.

    A truncated ``.nii.gz`` would otherwise be read as zeros (a wrong prediction, no error); a
    4-D or multi-component image would fail inside nnU-Net after other cases were written, and
    a 2-D image for a model with 3-D patches would be predicted as a volume of one slice.

    Raises:
        InputError: Naming the file.
    """
    allowed = (3,) if model.takes_volumes else (2, 3)
    for case in cases:
        for file in case.image_files:
            verify_image_complete(file)
            if file.name.lower().endswith(_HEADER_ENDINGS):
                _check_dimension(file, allowed, model.configuration)


def _check_dimension(file: Path, allowed: tuple[int, ...], configuration: str) -> None:
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(file))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1][:120] if str(err).strip() else "unreadable"
        raise InputError(file, "a readable image", first) from err
    dimension, components = reader.GetDimension(), reader.GetNumberOfComponents()
    if components != 1:
        raise InputError(
            file,
            "an image of one value per voxel (each channel in its own CASE_XXXX file)",
            f"{components} values per voxel",
            fix="Split the channels into one file each, as nnU-Net's dataset format requires.",
        )
    if dimension not in allowed:
        raise InputError(
            file,
            f"a {' or '.join(f'{d}-D' for d in allowed)} image, as the {configuration} model "
            "was trained on",
            f"a {dimension}-D image",
            fix="Give the images in the layout of the training images.",
        )
