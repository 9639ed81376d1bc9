"""nnU-Net's folder conventions: ``dataset.json`` labels, file listing, reader/writers."""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LabelSpec",
    "case_id_from_filename",
    "is_hidden",
    "list_case_files",
    "load_json",
    "reader_writer",
]

# nnU-Net reader/writer class name -> module, so we import only the one we need (the registry
# module imports every reader: SimpleITK, nibabel, tifffile, scikit-image; about 0.5 s).
_READER_WRITERS = {
    "SimpleITKIO": "nnunetv2.imageio.simpleitk_reader_writer",
    "SimpleITKIOWithReorient": "nnunetv2.imageio.simpleitk_reader_writer",
    "NibabelIO": "nnunetv2.imageio.nibabel_reader_writer",
    "NibabelIOWithReorient": "nnunetv2.imageio.nibabel_reader_writer",
    "NaturalImage2DIO": "nnunetv2.imageio.natural_image_reader_writer",
    "Tiff3DIO": "nnunetv2.imageio.tif_reader_writer",
}


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


def load_json(path: str | os.PathLike[str]) -> Any:
    """Load a JSON file with one clear error line when it is missing or malformed.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If it is not valid JSON.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"file not found: {file}")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: not valid JSON ({err}).") from err


@dataclass(frozen=True)
class LabelSpec:
    """The label definitions of an nnU-Net ``dataset.json``.

    Attributes:
        labels: Name to value (an int) or, for region-based datasets, to a tuple of ints.
        regions_class_order: For region datasets, the label written for each region channel.
        ignore_label: The value of the ``ignore`` label, if any.
        file_ending: E.g. ``".nii.gz"``.
    """

    labels: dict[str, int | tuple[int, ...]]
    regions_class_order: tuple[int, ...] | None = None
    ignore_label: int | None = None
    file_ending: str = ".nii.gz"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def has_regions(self) -> bool:
        """Whether any label is a region (a tuple of values)."""
        return any(isinstance(v, tuple) for v in self.labels.values())

    @property
    def foreground(self) -> dict[str, int | tuple[int, ...]]:
        """Labels other than background (value 0) and ``ignore``."""
        return {k: v for k, v in self.labels.items() if k != "ignore" and v != 0 and v != (0,)}

    def resolve(self, label: str | int) -> int | tuple[int, ...]:
        """Turn a label name or value (as given on a command line) into its value.

        Examples:
            >>> spec = LabelSpec(labels={"background": 0, "LV": 1, "RV": 2})
            >>> spec.resolve("RV"), spec.resolve("1"), spec.resolve(2)
            (2, 1, 2)
        """
        if isinstance(label, int) or (isinstance(label, str) and label.strip().isdigit()):
            value = int(label)
            known = {v for v in self.labels.values() if isinstance(v, int)}
            if value not in known and not self.has_regions:
                raise ValueError(
                    f"label {value} is not defined in dataset.json; known: {sorted(known)}."
                )
            return value
        if label in self.labels:
            return self.labels[label]
        import difflib

        close = difflib.get_close_matches(str(label), list(self.labels), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"label {label!r} is not defined in dataset.json.{hint}")

    @classmethod
    def from_dataset_json(
        cls, dataset_json: dict[str, Any], *, source: str = "dataset.json"
    ) -> LabelSpec:
        """Build from a loaded ``dataset.json`` dict.

        Raises:
            ValueError: If ``labels`` is missing or malformed.
        """
        raw = dataset_json.get("labels")
        if not isinstance(raw, dict) or not raw:
            raise ValueError(f"{source}: 'labels' must be a non-empty mapping of name to value.")
        labels: dict[str, int | tuple[int, ...]] = {}
        for name, value in raw.items():
            if isinstance(value, (list, tuple)):
                labels[name] = tuple(int(v) for v in value)
            elif isinstance(value, int) and not isinstance(value, bool):
                labels[name] = value
            else:
                raise ValueError(
                    f"{source}: label {name!r} must be an int or a list of ints; got {value!r}."
                )
        order = dataset_json.get("regions_class_order")
        ignore = labels.get("ignore")
        return cls(
            labels=labels,
            regions_class_order=tuple(int(v) for v in order) if order else None,
            ignore_label=ignore if isinstance(ignore, int) else None,
            file_ending=str(dataset_json.get("file_ending", ".nii.gz")),
            extra={
                k: v for k, v in dataset_json.items() if k not in {"labels", "regions_class_order"}
            },
        )


def reader_writer(name: str) -> Any:
    """Instantiate nnU-Net's image reader/writer class ``name`` (from ``plans.json``).

    Only that reader's module is imported, and nothing of torch.

    Args:
        name: ``plans["image_reader_writer"]``, e.g. ``"SimpleITKIO"``.

    Raises:
        ValueError: For an unknown name.
    """
    module = _READER_WRITERS.get(name)
    if module is None:
        raise ValueError(
            f"image_reader_writer must be one of {sorted(_READER_WRITERS)}; got {name!r}."
        )
    return getattr(importlib.import_module(module), name)()
