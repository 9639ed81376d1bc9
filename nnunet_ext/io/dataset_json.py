"""An nnU-Net ``dataset.json``: its labels (:class:`LabelSpec`), validated as nnU-Net reads them."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.json_files import load_json
from nnunet_ext.io.schema import describe, expect_mapping, invalid_key, key_path

__all__ = ["FILE_ENDINGS", "MAX_LABEL", "LabelSpec", "LabelValue", "load_dataset_json"]


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
