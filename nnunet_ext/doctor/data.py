"""Data checks: junk files, unreadable files, label values, image/label pairing, channel suffixes.

Every data file is checked by actually reading it to the end (``.npz`` members decompressed,
``.b2nd`` arrays read, ``.pkl`` parsed without running code, images decoded), in parallel over
files. Nothing is modified here; :func:`remove_junk` deletes only AppleDouble and ``.DS_Store``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnunet_ext.doctor.findings import Finding, is_junk

if TYPE_CHECKING:
    from nnunet_ext._parallel import Executor

__all__ = [
    "IMAGE_ENDINGS",
    "check_file",
    "check_raw_dataset",
    "find_dataset_folders",
    "remove_junk",
    "scan_data",
]

logger = logging.getLogger(__name__)

#: Image file endings nnU-Net's readers handle (longest first).
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".bmp", ".tif", ".tiff")
_DATASET = re.compile(r"^Dataset(\d{3})_(.+)$")
_CHANNEL = re.compile(r"^(.+)_(\d{4})$")
_CONFIGURATIONS = ("3d_fullres", "3d_lowres", "2d")
_JUNK_FIX = "delete it (`nnunet-ext doctor --fix` deletes these files and nothing else)"

#: A unit of work for :func:`check_file`: (kind, path, context).
Job = tuple[str, str, dict[str, Any]]


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


def _image_ending(name: str) -> str | None:
    lower = name.lower()
    return next((e for e in IMAGE_ENDINGS if lower.endswith(e)), None)


def check_raw_dataset(folder: Path) -> tuple[list[Finding], list[Job]]:
    """Check a raw dataset's layout and list its image and label files for reading.

    Checks ``dataset.json``, channel suffixes (``CASE_XXXX`` with XXXX in ``channel_names``),
    that every training case has all channels and a label, and that every label has an image.

    Returns:
        The layout findings and the read jobs (images, labels with their declared values).
    """
    from nnunet_ext.io import LabelSpec, load_json

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


def _check_image_folder(
    images: Path, ending: str, num_channels: int, findings: list[Finding], jobs: list[Job]
) -> dict[str, set[int]]:
    """Read jobs and channel-suffix findings for one images folder; the channels per case."""
    from nnunet_ext.io import list_case_files

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
    from nnunet_ext.io import list_case_files

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


def _walk(folder: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


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
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            archive[key]


def _read_b2nd(path: Path) -> None:
    import blosc2  # type: ignore[import-untyped]

    blosc2.open(urlpath=str(path), mode="r")[:]


def _read_pkl(path: Path) -> None:
    import pickletools

    from nnunet_ext.io import UnsafePickleError, safe_loads

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
    import zipfile

    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise ValueError(f"member {bad!r} fails its CRC check")


def _check_image_file(path: Path) -> None:
    """Catch truncation that SimpleITK reads silently (it pads a short .nii/.nii.gz)."""
    from nnunet_ext.io.errors import InputError
    from nnunet_ext.io.labels import verify_image_complete

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
    import numpy as np
    import SimpleITK as sitk  # noqa: N813

    from nnunet_ext.io import as_exact_labels

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
    from nnunet_ext.io.errors import InputError

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
    from nnunet_ext._parallel import map_cases

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
    logger.info("reading %d files with %d worker(s)", len(jobs), num_workers)
    for result in map_cases(
        check_file, jobs, num_workers=num_workers, desc="doctor: reading files", executor=executor
    ):
        findings.extend(result)
    findings.sort(key=lambda f: (f.path or "", f.check))
    return findings, len(jobs)


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
