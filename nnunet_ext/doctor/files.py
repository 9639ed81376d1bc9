"""Read one data file completely and report whether it is damaged (the doctor's worker).

Every data file is read to the end: ``.npz`` members decompressed, ``.b2nd`` arrays read,
``.pkl`` parsed without running code, ``.pth`` zip members CRC-checked, images decoded (and
label files checked for integer, declared values). A damaged file's finding says how to
re-create it.
"""

from __future__ import annotations

import json
import pickletools
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ext.doctor.datasets import _dataset_id
from nnunet_ext.doctor.findings import Finding
from nnunet_ext.io import (
    InputError,
    UnsafePickleError,
    as_exact_labels,
    safe_loads,
    verify_image_complete,
)

__all__ = ["IMAGE_ENDINGS", "Job", "check_file"]

#: Image file endings nnU-Net's readers handle (longest first).
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".bmp", ".tif", ".tiff")
_CONFIGURATIONS = ("3d_fullres", "3d_lowres", "2d")

#: A unit of work for :func:`check_file`: (kind, path, context).
Job = tuple[str, str, dict[str, Any]]


def _image_ending(name: str) -> str | None:
    lower = name.lower()
    return next((e for e in IMAGE_ENDINGS if lower.endswith(e)), None)


def _file_job(path: Path, area: str) -> Job | None:
    name = path.name
    if name.startswith("."):
        return None
    if name.endswith(".npz"):
        return ("npz", str(path), {"area": area})
    if name.endswith(".b2nd"):
        return ("b2nd", str(path), {"area": area})
    if name.endswith(".pkl"):
        return ("pkl", str(path), {"area": area})
    if name.endswith(".json"):
        return ("json", str(path), {"area": area})
    if name.endswith(".pth"):
        return ("pth", str(path), {"area": area})
    if _image_ending(name) is not None:
        return ("image", str(path), {"area": area})
    return None


def _fix_for(kind: str, path: Path, area: str) -> str:
    if area == "raw":
        return "copy or export this file again from the source data"
    if area == "preprocessed":
        conf = next(
            (c for c in _CONFIGURATIONS if path.parent.name.endswith("_" + c)), "CONFIGURATION"
        )
        return (
            f"re-run nnUNetv2_preprocess -d {_dataset_id(path)} -c {conf} for this case "
            "(or delete the file first; nnU-Net rewrites every case)"
        )
    if kind == "pth":
        return "the checkpoint is damaged: restore it from a backup or train this fold again"
    parts = path.parts
    if "validation" in parts and parts.index("validation") >= 2:
        fold = parts[parts.index("validation") - 1]
        model = parts[parts.index("validation") - 2].split("__")
        if fold.startswith("fold_") and len(model) == 3:
            trainer, plans, configuration = model
            return (
                f"re-run nnUNetv2_train {_dataset_id(path)} {configuration} {fold[5:]} "
                f"-tr {trainer} -p {plans} --val --npz"
            )
    return "re-create it (re-run the prediction or command that wrote it), or delete it"


def check_file(job: Job) -> list[Finding]:
    """Read one file completely and report whether it is damaged (a worker function).

    Args:
        job: ``(kind, path, context)``; kind is ``npz``, ``b2nd``, ``pkl``, ``json``, ``pth``,
            ``image`` or ``label`` (a label also checks integer and declared values).

    Returns:
        Findings for this file (empty when it is fine).
    """
    kind, path_text, context = job
    path = Path(path_text)
    area = str(context.get("area", "results"))
    try:
        if kind == "label":
            return _check_label(path, context.get("declared") or [])
        _READERS[kind](path)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return [
            Finding(
                "error",
                "unreadable",
                f"cannot be read completely ({type(err).__name__}: {first[:200]})",
                path=str(path),
                fix=_fix_for(kind, path, area),
            )
        ]
    return []


def _read_npz(path: Path) -> None:
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            archive[key]


def _read_b2nd(path: Path) -> None:
    import blosc2  # type: ignore[import-untyped]

    blosc2.open(urlpath=str(path), mode="r")[:]


def _read_pkl(path: Path) -> None:
    data = path.read_bytes()
    try:
        safe_loads(data)
    except UnsafePickleError:
        # e.g. postprocessing.pkl references functions: parse the opcodes, run nothing
        for _ in pickletools.genops(data):
            pass


def _read_json(path: Path) -> None:
    json.loads(path.read_text(encoding="utf-8"))


def _read_pth(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise ValueError(f"member {bad!r} fails its CRC check")


def _check_image_file(path: Path) -> None:
    """Catch truncation that SimpleITK reads silently (it pads a short .nii/.nii.gz)."""
    try:
        verify_image_complete(path)
    except InputError as err:
        raise ValueError(f"truncated or corrupt: {err.found}; {err.expected} expected") from err


def _read_image(path: Path) -> None:
    import SimpleITK as sitk  # noqa: N813

    _check_image_file(path)
    sitk.ReadImage(str(path))


_READERS = {
    "npz": _read_npz,
    "b2nd": _read_b2nd,
    "pkl": _read_pkl,
    "json": _read_json,
    "pth": _read_pth,
    "image": _read_image,
}


def _check_label(path: Path, declared: Sequence[int]) -> list[Finding]:
    import SimpleITK as sitk  # noqa: N813

    try:
        _check_image_file(path)
        image = sitk.ReadImage(str(path))
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        first = (str(err).strip().splitlines() or ["RuntimeError"])[0]
        return [
            Finding(
                "error",
                "unreadable",
                f"cannot be read completely ({first[:200]})",
                path=str(path),
                fix=_fix_for("label", path, "raw"),
            )
        ]
    values = np.asarray(sitk.GetArrayViewFromImage(image))
    try:
        exact = as_exact_labels(values, name="label file")
    except ValueError as err:
        return [
            Finding(
                "error",
                "labels",
                f"must be {err.expected}; got {err.found}"
                if isinstance(err, InputError)
                else str(err).removeprefix("label file: ").split(". ")[0],
                path=str(path),
                fix="re-export the label as integers (cast, don't interpolate: nearest-neighbour "
                "resampling only)",
            )
        ]
    found = {int(v) for v in np.unique(exact)}
    extra = sorted(found - set(declared)) if declared else []
    if extra:
        return [
            Finding(
                "error",
                "labels",
                f"label values {extra} are not declared in dataset.json "
                f"(declared: {list(declared)})",
                path=str(path),
                fix="declare them in dataset.json 'labels' or fix the label file",
            )
        ]
    return []
