"""Which labels or regions to evaluate: from ``dataset.json`` (as nnU-Net) or as asked for.

:func:`find_dataset_json` finds the ``dataset.json`` of a prediction/reference pair of folders,
:func:`label_ids_from_dataset_json` reads nnU-Net's labels or regions, names and ignore label
from it; labels asked for by value, region or name are resolved against it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nnunet_ext.evaluate.metrics import LabelOrRegion, label_key
from nnunet_ext.io import LabelSpec, load_json_object

__all__ = ["find_dataset_json", "label_ids_from_dataset_json"]

_NUMERIC_LABEL = re.compile(r"^\s*\(?\s*\d+\s*(,\s*\d+\s*)*,?\s*\)?\s*$")


def label_ids_from_dataset_json(
    dataset_json: Mapping[str, Any], *, source: str = "dataset.json"
) -> tuple[list[LabelOrRegion], dict[str, str], int | None]:
    """Labels or regions nnU-Net evaluates for a ``dataset.json``, their names, the ignore label.

    As nnU-Net's ``LabelManager``: a dataset has regions when a label maps to a list of more than
    one value; then every non-background, non-ignore entry is a region, in file order. Otherwise
    the foreground labels are the sorted distinct values other than 0 and ``ignore``.

    Args:
        dataset_json: The loaded ``dataset.json``.
        source: Its path, for error messages.

    Returns:
        ``(label_ids, names, ignore_label)`` with ``names`` keyed by :func:`label_key`.

    Raises:
        ValueError: If ``labels`` is missing or malformed.

    Examples:
        >>> label_ids_from_dataset_json({"labels": {"background": 0, "b": 2, "a": 1}})
        ([1, 2], {'1': 'a', '2': 'b'}, None)
        >>> label_ids_from_dataset_json(
        ...     {"labels": {"background": 0, "whole": [1, 2], "core": 2, "ignore": 3},
        ...      "regions_class_order": [1, 2]})
        ([(1, 2), 2], {'(1, 2)': 'whole', '2': 'core'}, 3)
    """
    spec = LabelSpec.from_dataset_json(dataset_json, source=source)
    names: dict[str, str] = {}
    for name, value in spec.foreground.items():
        names.setdefault(label_key(value), name)
    label_ids: list[LabelOrRegion] = list(spec.defined)
    return label_ids, {label_key(v): names[label_key(v)] for v in label_ids}, spec.ignore_label


def find_dataset_json(prediction_dir: Path, reference_dir: Path) -> Path | None:
    """Find the ``dataset.json`` that describes a prediction/reference pair of folders.

    Looked for, in order: in the prediction folder (``nnUNetv2_predict`` output), two levels up
    from it (a model folder above ``fold_X/validation``), in the reference folder and in its
    parent (``labelsTr``, ``gt_segmentations``).

    Returns:
        The first file found, or ``None``.
    """
    for candidate in (
        prediction_dir / "dataset.json",
        prediction_dir.parent.parent / "dataset.json",
        reference_dir / "dataset.json",
        reference_dir.parent / "dataset.json",
    ):
        if candidate.is_file():
            return candidate
    return None


def _resolve_labels(
    labels: Sequence[str | int | Sequence[int]] | None,
    dataset_json: Mapping[str, Any] | None,
    source: str,
) -> tuple[list[LabelOrRegion], dict[str, str]]:
    if dataset_json is not None:
        known, names, _ = label_ids_from_dataset_json(dataset_json, source=source)
        if labels is None:
            return known, names
        spec = LabelSpec.from_dataset_json(dataset_json, source=source)
        requested = [
            tuple(label) if isinstance(label, Sequence) and not isinstance(label, str) else label
            for label in labels
        ]
        chosen_known: list[LabelOrRegion] = list(spec.resolve_all(requested))
        return chosen_known, {
            label_key(v): names.get(label_key(v), label_key(v)) for v in chosen_known
        }
    by_name: dict[str, LabelOrRegion] = {}
    names = {}
    if labels is None:
        return [], names
    chosen: list[LabelOrRegion] = []
    for label in labels:
        value: LabelOrRegion
        if isinstance(label, str) and _NUMERIC_LABEL.match(label):
            parts = [int(p) for p in label.strip().strip("()").replace(" ", "").split(",") if p]
            value = tuple(parts) if "," in label else parts[0]
        elif isinstance(label, str):
            if label not in by_name:
                raise ValueError(
                    f"labels: {label!r} is not a label name in {source}; known: {sorted(by_name)}. "
                    "Pass values (1 2), regions (1,2) or names from dataset.json."
                )
            value = by_name[label]
        elif isinstance(label, int):
            value = label
        else:
            value = tuple(int(v) for v in label)
        chosen.append(value)
        names.setdefault(label_key(value), label_key(value))
    return chosen, names


def _labels_and_ending(
    labels: Sequence[str | int | Sequence[int]] | None,
    dataset_json: str | os.PathLike[str] | None,
    pred_root: Path,
    ref_root: Path,
    ignore_label: int | None,
    file_ending: str | None,
) -> tuple[list[LabelOrRegion], dict[str, str], int | None, str, str]:
    """Labels to score, their names, the ignore label and file ending, and where they came from."""
    json_path = (
        Path(dataset_json) if dataset_json is not None else find_dataset_json(pred_root, ref_root)
    )
    loaded = load_json_object(json_path) if json_path is not None else None
    source = str(json_path) if json_path is not None else "(no dataset.json)"
    label_ids, names = _resolve_labels(labels, loaded, source)
    if not label_ids:
        raise ValueError(
            f"no labels to evaluate: no dataset.json found next to {pred_root} or {ref_root}, and "
            "no labels given. Pass labels (e.g. [1, 2]) or dataset_json."
        )
    if ignore_label is None and loaded is not None:
        ignore_label = label_ids_from_dataset_json(loaded, source=source)[2]
    ending = file_ending or (
        str(loaded.get("file_ending")) if loaded and loaded.get("file_ending") else ".nii.gz"
    )
    return label_ids, names, ignore_label, ending, source
