"""nnU-Net's folder conventions: ``dataset.json`` labels, file listing, reader/writers."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import describe, expect_mapping, invalid_key, key_path

__all__ = [
    "FILE_ENDINGS",
    "LabelSpec",
    "LabelValue",
    "case_id_from_filename",
    "configuration_architecture",
    "configuration_entry",
    "configuration_patch_size",
    "is_hidden",
    "list_case_files",
    "load_dataset_json",
    "load_json",
    "load_json_object",
    "load_model_files",
    "load_plans",
    "load_splits",
    "reader_writer",
    "require_model_files",
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
        InputError: If it is not valid UTF-8 JSON (``NaN`` and ``Infinity`` included: not JSON).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"file not found: {file}")

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(file.read_text(encoding="utf-8"), parse_constant=_no_constants)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as err:
        found = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise InputError(
            file,
            "valid UTF-8 JSON",
            f"a parse error ({found})",
            fix="Fix the file (a JSON linter shows where) or write it again.",
        ) from err


def load_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a JSON file that must hold an object (a ``{...}``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: If it is not valid JSON or not an object.
    """
    data = load_json(path)
    if not isinstance(data, dict):
        raise InputError(path, "a JSON object ({...}) at the top level", describe(data))
    return data


LabelValue = int | tuple[int, ...]


@dataclass(frozen=True)
class LabelSpec:
    """The label definitions of an nnU-Net ``dataset.json``, with ``LabelManager``'s semantics.

    A dataset is region-based exactly when some label maps to a list of more than one value
    (``{"x": [1]}`` is the label 1, not a region). In a label dataset every value is an ``int``;
    in a region dataset a list value is a tuple.

    Attributes:
        labels: Name to value (an int) or, for region-based datasets, to a tuple of ints.
        regions_class_order: For region datasets, the label written for each region channel.
        ignore_label: The value of the ``ignore`` label, if any.
        file_ending: E.g. ``".nii.gz"``.
    """

    labels: dict[str, LabelValue]
    regions_class_order: tuple[int, ...] | None = None
    ignore_label: int | None = None
    file_ending: str = ".nii.gz"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str = field(default="dataset.json", compare=False)

    @property
    def has_regions(self) -> bool:
        """Whether any label is a region (a tuple of values)."""
        return any(isinstance(v, tuple) for v in self.labels.values())

    def same_labels(self, other: LabelSpec) -> bool:
        """Whether ``other`` defines the same labels and region order (what fusing needs).

        Examples:
            >>> a = LabelSpec(labels={"background": 0, "a": 1})
            >>> a.same_labels(LabelSpec(labels={"background": 0, "a": 1}, extra={"x": 1}))
            True
            >>> a.same_labels(LabelSpec(labels={"background": 0, "b": 1}))
            False
        """
        return (self.labels, self.regions_class_order) == (
            other.labels,
            other.regions_class_order,
        )

    @property
    def foreground(self) -> dict[str, LabelValue]:
        """Labels other than background (value 0) and ``ignore``."""
        return {k: v for k, v in self.labels.items() if k != "ignore" and set(_as_tuple(v)) != {0}}

    @property
    def defined(self) -> list[LabelValue]:
        """What can be asked for: foreground label values (sorted) or regions (in file order).

        Examples:
            >>> LabelSpec(labels={"background": 0, "b": 2, "a": 1}).defined
            [1, 2]
        """
        if self.has_regions:
            return list(self.foreground.values())
        return sorted({v for v in self.foreground.values() if isinstance(v, int)})

    def describe_defined(self) -> str:
        """The defined labels as ``1 (LV), 2 (RV)`` for error messages.

        Examples:
            >>> LabelSpec(labels={"background": 0, "LV": 1, "RV": 2}).describe_defined()
            '1 (LV), 2 (RV)'
        """
        names: dict[LabelValue, str] = {}
        for name, value in self.foreground.items():
            names.setdefault(value, name)
        parts = []
        for value in self.defined:
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            parts.append(f"{shown} ({names[value]})" if value in names else shown)
        return ", ".join(parts) or "none"

    def resolve(self, label: str | int | tuple[int, ...]) -> LabelValue:
        """Turn a label name, value or region (as given on a command line) into its value.

        Raises:
            InputError: If ``dataset.json`` does not define it; the defined labels are listed.

        Examples:
            >>> spec = LabelSpec(labels={"background": 0, "LV": 1, "RV": 2})
            >>> spec.resolve("RV"), spec.resolve("1"), spec.resolve(2)
            (2, 1, 2)
            >>> spec.resolve(9)
            Traceback (most recent call last):
            ...
            nnunet_ext.io.errors.InputError: labels must be a label defined in dataset.json ...
        """
        value: LabelValue | None = None
        if isinstance(label, bool):
            value = None
        elif isinstance(label, int):
            value = label
        elif isinstance(label, tuple):
            value = tuple(int(v) for v in label)
        elif isinstance(label, str):
            text = label.strip().strip("()").replace(" ", "")
            if text and all(part.isdigit() for part in text.split(",")):
                parts = tuple(int(p) for p in text.split(","))
                value = parts if "," in text else parts[0]
            elif label in self.foreground:
                return self.foreground[label]
        if isinstance(value, tuple) and len(value) == 1 and not self.has_regions:
            value = value[0]
        used = {v for val in self.foreground.values() for v in _as_tuple(val)}
        if value is not None and (value in self.defined or set(_as_tuple(value)) <= used):
            return value  # a defined label/region, or a union of defined label values
        hint = ""
        if isinstance(label, str) and value is None:
            import difflib

            close = [n for n in self.foreground if n.lower() == label.lower()]
            close = close or difflib.get_close_matches(label, list(self.foreground), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(
            "labels",
            f"a label defined in {self.source} ({self.describe_defined()})",
            repr(label),
            fix=f"Pass one of the defined labels.{hint}",
        )

    def resolve_all(self, labels: Sequence[str | int | tuple[int, ...]]) -> list[LabelValue]:
        """Resolve every label of a ``--labels`` list, refusing undefined ones and duplicates."""
        chosen: list[LabelValue] = []
        for label in labels:
            value = self.resolve(label)
            if value in chosen:
                raise InputError(
                    "labels", "each label once", f"{label!r} twice", fix="Drop the duplicate."
                )
            chosen.append(value)
        return chosen

    @classmethod
    def from_dataset_json(cls, dataset_json: Any, *, source: str = "dataset.json") -> LabelSpec:
        """Build from a loaded ``dataset.json``, validating it as nnU-Net's ``LabelManager`` does.

        Raises:
            InputError: If the file is not an object, ``labels`` is missing or malformed, the
                background is not 0, the ignore label is not the largest value + 1, a region
                dataset lacks a matching ``regions_class_order``, or ``file_ending`` is not a
                string starting with ``.``.

        Examples:
            >>> LabelSpec.from_dataset_json({"labels": {"background": 0, "x": [1]}}).labels
            {'background': 0, 'x': 1}
            >>> LabelSpec.from_dataset_json({"labels": {"background": 0, "x": "1"}})
            Traceback (most recent call last):
            ...
            nnunet_ext.io.errors.InputError: dataset.json: labels.x must be an integer >= 0 ...
        """
        data = expect_mapping(dataset_json, source=source, where=None)
        labels, has_regions = _parse_labels(data, source)
        raw = data["labels"]
        ignore: int | None = None
        if "ignore" in labels:
            ignore_value = labels["ignore"]
            if isinstance(ignore_value, tuple):
                raise InputError(
                    source,
                    "an integer, not a region",
                    describe(raw["ignore"]),
                    key=key_path("labels", "ignore"),
                )
            ignore = ignore_value
            others = [
                v
                for k, val in labels.items()
                if k != "ignore"
                for v in (val if isinstance(val, tuple) else (val,))
            ]
            if ignore != max(others) + 1:
                raise InputError(
                    source,
                    f"the largest label + 1 ({max(others) + 1}), as nnU-Net requires",
                    describe(raw["ignore"]),
                    key=key_path("labels", "ignore"),
                )
        order = _regions_class_order(data, labels, has_regions, source)
        ending = _file_ending(data, source)
        return cls(
            labels=labels,
            regions_class_order=order or None,
            ignore_label=ignore,
            file_ending=ending,
            extra={k: v for k, v in data.items() if k not in {"labels", "regions_class_order"}},
            source=source,
        )


#: Every ending one of nnU-Net's image reader/writers supports (``supported_file_endings``).
FILE_ENDINGS = frozenset(
    {".nii.gz", ".nii", ".nrrd", ".mha", ".gipl", ".png", ".bmp", ".tif", ".tiff"}
)

_LABELS_FIX = (
    'dataset.json needs "labels": {"background": 0, ...} as nnU-Net\'s LabelManager reads it.'
)


def _parse_labels(data: Mapping[str, Any], source: str) -> tuple[dict[str, LabelValue], bool]:
    """``labels`` of a dataset.json as name -> value (a tuple per region), and whether regions."""
    if "labels" not in data:
        raise InputError(source, "present", "nothing", key="labels", fix=_LABELS_FIX)
    raw = data["labels"]
    if not isinstance(raw, dict) or not raw:
        raise InputError(source, "a non-empty object of name to value", describe(raw), key="labels")
    parsed: dict[str, list[int] | int] = {}
    for name, value in raw.items():
        where = key_path("labels", str(name))
        if isinstance(value, list):
            if not value:
                raise InputError(source, "a non-empty list of integers", "[]", key=where)
            parsed[name] = [_label_int(v, source, key_path(where, i)) for i, v in enumerate(value)]
        else:
            parsed[name] = _label_int(value, source, where)
    if "background" not in parsed:
        raise InputError(
            source,
            "present (value 0)",
            "nothing",
            key=key_path("labels", "background"),
            fix=_LABELS_FIX,
        )
    if parsed["background"] != 0:
        raise InputError(
            source,
            "0",
            describe(raw["background"]),
            key=key_path("labels", "background"),
            fix="nnU-Net requires background = 0.",
        )
    has_regions = any(isinstance(v, list) and len(v) > 1 for v in parsed.values())
    labels: dict[str, LabelValue] = {}
    for name, value in parsed.items():
        if isinstance(value, list):
            labels[name] = tuple(value) if has_regions else value[0]
        else:
            labels[name] = value
    return labels, has_regions


def _regions_class_order(
    data: Mapping[str, Any], labels: Mapping[str, LabelValue], has_regions: bool, source: str
) -> tuple[int, ...] | None:
    """``regions_class_order``: required (one entry per region) when there are regions."""
    raw_order = data.get("regions_class_order")
    if has_regions:
        regions = [
            v for k, v in labels.items() if k != "ignore" and v != 0 and set(_as_tuple(v)) != {0}
        ]
        if not isinstance(raw_order, list):
            raise invalid_key(
                source,
                data,
                "regions_class_order",
                f"a list of {len(regions)} label values (one per region)",
                fix="Region-based datasets need regions_class_order.",
            )
        order = tuple(
            _label_int(v, source, key_path("regions_class_order", i))
            for i, v in enumerate(raw_order)
        )
        if len(order) != len(regions):
            raise InputError(
                source,
                f"one entry per region ({len(regions)})",
                f"{len(order)} entries",
                key="regions_class_order",
            )
        return order
    if raw_order is None:
        return None
    if not isinstance(raw_order, list):
        raise InputError(
            source, "a list of integers", describe(raw_order), key="regions_class_order"
        )
    return tuple(
        _label_int(v, source, key_path("regions_class_order", i)) for i, v in enumerate(raw_order)
    )


def _file_ending(data: Mapping[str, Any], source: str) -> str:
    """``file_ending``: a string starting with '.', one of nnU-Net's readers' endings."""
    ending = data.get("file_ending", ".nii.gz")
    if not isinstance(ending, str) or not ending.startswith(".") or len(ending) < 2:
        raise InputError(
            source,
            "a string starting with '.', like \".nii.gz\"",
            describe(ending),
            key="file_ending",
        )
    if ending.lower() not in FILE_ENDINGS:
        raise InputError(
            source,
            f"a file ending nnU-Net's readers support ({', '.join(sorted(FILE_ENDINGS))})",
            describe(ending),
            key="file_ending",
        )
    return ending


def _as_tuple(value: LabelValue) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value,)


#: Largest label value: nnU-Net writes label maps as uint8 or uint16.
MAX_LABEL = 65535


def _label_int(value: Any, source: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(source, "an integer >= 0 or a list of them", describe(value), key=where)
    if value > MAX_LABEL:
        raise InputError(
            source,
            f"at most {MAX_LABEL} (label maps are uint8 or uint16)",
            describe(value),
            key=where,
        )
    return value


def load_dataset_json(path: str | os.PathLike[str]) -> LabelSpec:
    """Read and validate a ``dataset.json`` (the owner of this input kind).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: For invalid JSON or label definitions; see :meth:`LabelSpec.from_dataset_json`.
    """
    return LabelSpec.from_dataset_json(load_json(path), source=str(path))


def require_model_files(model_dir: str | os.PathLike[str], where: str) -> None:
    """Check that ``model_dir`` holds the dataset.json and plans.json nnUNetv2_train writes.

    ``where`` names the parameter (or spec member) that gave the folder, e.g. ``"fold_dirs"``.

    Raises:
        FileNotFoundError: Naming the missing file and what a trained model folder holds.
    """
    for name in ("dataset.json", "plans.json"):
        path = Path(model_dir) / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{where}: {path} not found; a trained model folder "
                "($nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG) holds dataset.json and "
                "plans.json (written by nnUNetv2_train)."
            )


def load_splits(path: str | os.PathLike[str], cases: Sequence[str]) -> list[int]:
    """Per case, the fold of nnU-Net's ``splits_final.json`` whose ``val`` list holds it.

    The file is a JSON list of folds, each an object with ``train`` and ``val`` lists of case
    identifiers (what ``nnUNetv2_plan_and_preprocess`` writes, or a custom split).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: Naming the file (and key), for another structure, a case in no fold's
            ``val`` or in several.

    Examples:
        >>> import tempfile
        >>> splits = Path(tempfile.mkdtemp(), "splits_final.json")
        >>> _ = splits.write_text('[{"train": ["b"], "val": ["a"]}, {"train": [], "val": ["b"]}]')
        >>> load_splits(splits, ["b", "a"])
        [1, 0]
        >>> load_splits(splits, ["c"])
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: ...splits_final.json must be a list of folds with ...
    """
    folds = load_json(path)
    fix = (
        "Give the splits_final.json the models were trained with "
        "($nnUNet_preprocessed/DatasetX/splits_final.json)."
    )
    if not isinstance(folds, list) or not folds:
        raise InputError(path, "a list of folds", describe(folds), fix=fix)
    fold_of: dict[str, list[int]] = {}
    for index, fold in enumerate(folds):
        for key in ("train", "val"):
            values = fold.get(key) if isinstance(fold, Mapping) else None
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                found = "nothing" if values is None else describe(values)
                raise InputError(
                    path, "a list of case identifiers", found, key=f"[{index}].{key}", fix=fix
                )
        for case in fold["val"]:
            fold_of.setdefault(case, []).append(index)
    out = []
    for case in cases:
        found_in = fold_of.get(case, [])
        if len(found_in) != 1:
            raise InputError(
                path,
                f"a list of folds with case {case!r} (a case of the CV folders) in exactly one "
                "fold's val",
                "it in no fold's val" if not found_in else f"it in the val of folds {found_in}",
                fix=fix,
            )
        out.append(found_in[0])
    return out


def load_model_files(
    model_dir: str | os.PathLike[str], where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and check the ``dataset.json`` and ``plans.json`` of a trained model folder.

    Checked, beyond :func:`require_model_files`: ``dataset.json`` as
    :meth:`LabelSpec.from_dataset_json` (labels, ``file_ending``) with a non-empty
    ``channel_names`` object, and ``plans.json`` as :func:`load_plans` with its
    ``configurations`` (an object) and ``dataset_name`` (a string), which nnU-Net's predictor and
    trainer read.

    Args:
        model_dir: ``$nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG``.
        where: The parameter (or spec member) that gave the folder, for a missing file.

    Returns:
        ``(dataset_json, plans)``.

    Raises:
        FileNotFoundError: If a file is missing.
        InputError: For a damaged file or a missing or malformed key, naming file and key.
    """
    require_model_files(model_dir, where)
    folder = Path(model_dir)
    dataset_file = folder / "dataset.json"
    dataset_json = load_json_object(dataset_file)
    LabelSpec.from_dataset_json(dataset_json, source=str(dataset_file))
    fix = "Copy it again from the model folder nnUNetv2_train wrote."
    key = "channel_names" if "channel_names" in dataset_json else "modality"
    channels = dataset_json.get(key)
    if not isinstance(channels, Mapping) or not channels:
        raise invalid_key(
            dataset_file, dataset_json, "channel_names", "an object of channel names", fix=fix
        )
    plans_file = folder / "plans.json"
    plans = load_plans(plans_file)
    for name, expected, kind in (
        ("configurations", "an object of configurations", Mapping),
        ("dataset_name", "a string", str),
    ):
        if not isinstance(plans.get(name), kind):
            raise invalid_key(plans_file, plans, name, expected, fix=fix)
    parts = folder.name.split("__")
    if len(parts) == 3 and parts[2] in plans["configurations"]:
        configuration_patch_size(plans, parts[2], plans_file)  # the folder's configuration
        configuration_architecture(plans, parts[2], plans_file)
    return dataset_json, plans


def configuration_entry(
    plans: Mapping[str, Any], configuration: str, key: str, plans_file: str | os.PathLike[str]
) -> tuple[str, Mapping[str, Any]]:
    """The configuration (or the one it inherits from) that defines ``key``, and its entry.

    As nnU-Net's ``PlansManager``: a configuration's own keys override those of the one it
    inherits from (``inherits_from``).
    """
    configurations = plans.get("configurations")
    name, seen = configuration, list[str]()
    while True:
        entry = configurations.get(name) if isinstance(configurations, Mapping) else None
        if not isinstance(entry, Mapping):
            found = "nothing" if entry is None else describe(entry)
            raise InputError(
                plans_file,
                "an object",
                found,
                key=f"configurations.{name}",
                fix="Copy plans.json again from the model folder nnUNetv2_train wrote.",
            )
        if key in entry or "inherits_from" not in entry or len(seen) > 16:
            return name, entry
        seen.append(name)
        name = str(entry["inherits_from"])


def configuration_patch_size(
    plans: Mapping[str, Any], configuration: str, plans_file: str | os.PathLike[str]
) -> list[int]:
    """The ``patch_size`` of a configuration of ``plans.json``, following ``inherits_from``.

    As nnU-Net's ``PlansManager``: a configuration's own keys override those of the one it
    inherits from.

    Raises:
        InputError: Naming the file and key, unless the configuration (or one it inherits from)
            is an object with a ``patch_size`` of 2 or 3 positive integers.

    Examples:
        >>> plans = {"configurations": {"3d": {"patch_size": [8, 32, 32]},
        ...                             "3d_big": {"inherits_from": "3d"}}}
        >>> configuration_patch_size(plans, "3d_big", "plans.json")
        [8, 32, 32]
        >>> plans["configurations"]["3d"]["patch_size"] = [8, 0]
        >>> configuration_patch_size(plans, "3d_big", "plans.json")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: plans.json: configurations.3d.patch_size must be a list...
    """
    name, entry = configuration_entry(plans, configuration, "patch_size", plans_file)
    patch = entry.get("patch_size")
    if not (
        isinstance(patch, list)
        and len(patch) in (2, 3)
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in patch)
    ):
        raise InputError(
            plans_file,
            "a list of 2 or 3 positive integers",
            "nothing" if patch is None else describe(patch),
            key=f"configurations.{name}.patch_size",
            fix="Copy plans.json again from the model folder nnUNetv2_train wrote.",
        )
    return list(patch)


def configuration_architecture(
    plans: Mapping[str, Any], configuration: str, plans_file: str | os.PathLike[str]
) -> dict[str, Any]:
    """The ``architecture`` of a configuration of ``plans.json``, following ``inherits_from``.

    nnU-Net's predictor builds the network from it: ``network_class_name`` (a string) and
    ``arch_kwargs`` (an object) must be there.

    Raises:
        InputError: Naming the file and key, when it is missing or malformed.

    Examples:
        >>> plans = {"configurations": {"2d": {"patch_size": [32, 32]}}}
        >>> configuration_architecture(plans, "2d", "plans.json")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: plans.json: configurations.2d.architecture must be ...
    """
    name, entry = configuration_entry(plans, configuration, "architecture", plans_file)
    architecture = entry.get("architecture")
    if not (
        isinstance(architecture, Mapping)
        and isinstance(architecture.get("network_class_name"), str)
        and isinstance(architecture.get("arch_kwargs"), Mapping)
    ):
        raise InputError(
            plans_file,
            "an object with network_class_name (a string) and arch_kwargs (an object), as "
            "nnU-Net 2.x plans have",
            "nothing" if architecture is None else describe(architecture),
            key=f"configurations.{name}.architecture",
            fix="Copy plans.json again from the model folder nnUNetv2_train wrote.",
        )
    return dict(architecture)


def load_plans(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an nnU-Net ``plans.json`` for what our commands use of it.

    Checked: a JSON object whose ``image_reader_writer`` is a known reader/writer class name,
    and ``configurations`` (when present) an object of objects.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: For invalid JSON or a bad value, with its key.
    """
    plans = load_json_object(path)
    name = plans.get("image_reader_writer")
    if not isinstance(name, str) or name not in _READER_WRITERS:
        raise invalid_key(
            path,
            plans,
            "image_reader_writer",
            f"one of {', '.join(sorted(_READER_WRITERS))}",
            fix="Copy plans.json from the model folder (nnUNet_results/.../plans.json).",
        )
    configurations = plans.get("configurations", {})
    expect_mapping(configurations, source=path, where="configurations")
    for key, value in configurations.items():
        expect_mapping(value, source=path, where=key_path("configurations", str(key)))
    return plans


def reader_writer(name: str) -> Any:
    """Instantiate nnU-Net's image reader/writer class ``name`` (from ``plans.json``).

    Only that reader's module is imported, and nothing of torch.

    Args:
        name: ``plans["image_reader_writer"]``, e.g. ``"SimpleITKIO"``.

    Raises:
        InputError: For an unknown name.
    """
    module = _READER_WRITERS.get(name)
    if module is None:
        raise InputError(
            "plans.json",
            f"one of {', '.join(sorted(_READER_WRITERS))}",
            describe(name),
            key="image_reader_writer",
        )
    return getattr(importlib.import_module(module), name)()
