"""Read the evaluation JSON that ``evaluate --json`` writes, strictly, as an :class:`Evaluation`.

The reading half of :meth:`Evaluation.to_json <nnunet_ext.evaluate.Evaluation.to_json>`: every
key is checked (an unknown or missing key, a wrong type, a case without a label of the ``mean``
section is one :class:`~nnunet_ext.io.InputError` naming the file and the key path), ``null``
values are NaN again, and ``load_evaluation(p).to_json()`` equals the file's content for every
file ``evaluate`` wrote. ``nnunet-ext compare`` reads its inputs here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ext.evaluate.conventions import CONVENTIONS
from nnunet_ext.evaluate.measures import COLUMNS, DEFAULT_METRICS, column_keys, parse_metrics
from nnunet_ext.evaluate.metrics import COUNT_FIELDS, LabelOrRegion
from nnunet_ext.evaluate.results import CaseResult, Evaluation, LabelSummary
from nnunet_ext.evaluate.score import ScoreSpec
from nnunet_ext.evaluate.summary import EMPTY_POLICIES
from nnunet_ext.evaluate.surface import NSD_DEFINITIONS
from nnunet_ext.io import load_json_object
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import (
    check_keys,
    describe,
    expect_int,
    expect_mapping,
    expect_number_or_null,
    expect_str,
    invalid_key,
    key_path,
)

__all__ = ["evaluation_from_json", "load_evaluation", "parse_label_key"]

_TOP = {
    "schema_version",
    "conventions",
    "foreground_mean",
    "mean",
    "missing_predictions",
    "extra_predictions",
    "metric_per_case",
    "metrics",
    "score",
}
_TOP_REQUIRED = _TOP - {"metrics", "score"}
_CONVENTION_TEXT = ("mean", "spacing", "surface")
_COUNTS_OF_CASES = (
    "num_cases",
    "num_in_mean",
    "num_empty_reference",
    "num_empty_prediction",
    "num_both_empty",
)
_REGION = re.compile(r"^\((\d+(?:, \d+)*),?\)$")
_FIX = "Write it again with `nnunet-ext evaluate --json`."


def parse_label_key(key: str) -> LabelOrRegion | None:
    """The label or region of a ``mean`` key (:func:`~nnunet_ext.evaluate.metrics.label_key`).

    Returns ``None`` for a key that no label or region gives.

    Examples:
        >>> parse_label_key("3"), parse_label_key("(1, 2)"), parse_label_key("(2,)")
        (3, (1, 2), (2,))
        >>> parse_label_key("LV") is None
        True
    """
    if key.isdigit():
        return int(key)
    match = _REGION.match(key)
    if match is None:
        return None
    return tuple(int(v) for v in match.group(1).split(", "))


def load_evaluation(path: str | os.PathLike[str]) -> Evaluation:
    """Read an evaluation JSON written by ``nnunet-ext evaluate --json`` (or ``write_evaluation``).

    Args:
        path: The file.

    Returns:
        The evaluation, per case and per label, as :func:`evaluate_folder
        <nnunet_ext.evaluate.evaluate_folder>` returned it.

    Raises:
        FileNotFoundError: If the file does not exist.
        InputError: If it is not strict JSON or not an evaluation (one line: file, key path,
            expected, found).
    """
    return evaluation_from_json(load_json_object(path), source=Path(path))


def _number(value: Any, source: str | os.PathLike[str], where: str) -> float:
    return expect_number_or_null(value, source=source, where=where, fix=_FIX)


def _str_list(value: Any, source: str | os.PathLike[str], where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(source, "a list of strings", describe(value), key=where, fix=_FIX)
    return list(value)


def evaluation_from_json(data: Mapping[str, Any], *, source: str | os.PathLike[str]) -> Evaluation:
    """Validate the content of an evaluation JSON and rebuild the :class:`Evaluation`.

    Raises:
        InputError: For the first key that is unknown, missing or of the wrong kind.

    Examples:
        >>> evaluation_from_json({"schema_version": 2}, source="e.json")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: e.json: schema_version must be 1; got the number 2. ...
    """
    data = expect_mapping(data, source=source, where=None)
    version = data.get("schema_version")
    if version != 1 or isinstance(version, bool):
        raise invalid_key(source, data, "schema_version", "1", fix=_FIX)
    check_keys(data, source=source, where=None, allowed=_TOP, required=_TOP_REQUIRED)
    metrics = _metrics(data, source)
    columns = [COLUMNS[k] for k in column_keys(metrics) if k not in ("dice", "iou")]
    default = "metrics" not in data
    conventions = _conventions(data["conventions"], source, metrics, default=default)
    foreground = expect_mapping(data["foreground_mean"], source=source, where="foreground_mean")
    check_keys(
        foreground,
        source=source,
        where="foreground_mean",
        allowed=("Dice", "IoU", *columns),
        required=("Dice", "IoU", *columns),
    )
    spec, total = _score(data.get("score"), source)
    means = expect_mapping(data["mean"], source=source, where="mean")
    labels = [
        _label(key, entry, source, columns, default=default, scored=spec is not None)
        for key, entry in means.items()
    ]
    raw_cases = data["metric_per_case"]
    if not isinstance(raw_cases, list):
        raise InputError(source, "a list of cases", describe(raw_cases), key="metric_per_case")
    cases = [_case(i, raw, source, list(means), columns) for i, raw in enumerate(raw_cases)]
    return Evaluation(
        cases=cases,
        labels=labels,
        foreground_dice=_number(foreground["Dice"], source, "foreground_mean.Dice"),
        foreground_iou=_number(foreground["IoU"], source, "foreground_mean.IoU"),
        empty=conventions["empty"],
        ignore_label=conventions["ignore_label"],
        label_source=conventions["label_source"],
        missing_predictions=_str_list(data["missing_predictions"], source, "missing_predictions"),
        extra_predictions=_str_list(data["extra_predictions"], source, "extra_predictions"),
        metrics=metrics,
        convention=conventions["convention"],
        nsd_tolerance=conventions["nsd_tolerance"],
        nsd_definition=conventions["nsd_definition"],
        score=total,
        score_spec=spec,
    )


def _metrics(data: Mapping[str, Any], source: str | os.PathLike[str]) -> tuple[str, ...]:
    if "metrics" not in data:
        return DEFAULT_METRICS
    names = _str_list(data["metrics"], source, "metrics")
    try:
        return parse_metrics(names)
    except ValueError as err:
        raise InputError(
            source, "metric names that evaluate knows", str(err), key="metrics"
        ) from err


def _choice(
    entry: Mapping[str, Any],
    key: str,
    default: str | None,
    choices: Collection[str],
    source: str | os.PathLike[str],
    where: str,
) -> str:
    """``entry[key]`` (``default`` when absent), which must be one of ``choices``."""
    value = expect_str(entry.get(key, default), source=source, where=f"{where}.{key}")
    if value not in choices:
        raise InputError(
            source, f"one of {', '.join(choices)}", describe(value), key=f"{where}.{key}"
        )
    return value


def _conventions(
    value: Any, source: str | os.PathLike[str], metrics: Sequence[str], *, default: bool
) -> dict[str, Any]:
    where = "conventions"
    entry = expect_mapping(value, source=source, where=where)
    required = ["empty", "ignore_label", "label_source", "mean"]
    optional = []
    if not default:
        required += ["convention", "spacing", "surface"]
        if "nsd" in metrics:
            required.append("nsd_tolerance_mm")
            optional.append("nsd_definition")  # written since issue 26; older files: voxel
    check_keys(entry, source=source, where=where, allowed=[*required, *optional], required=required)
    nsd_definition = _choice(entry, "nsd_definition", "voxel", NSD_DEFINITIONS, source, where)
    empty = _choice(entry, "empty", None, EMPTY_POLICIES, source, where)
    convention = _choice(entry, "convention", "nan", CONVENTIONS, source, where)
    ignore = entry["ignore_label"]
    for name in ("label_source", *(k for k in _CONVENTION_TEXT if k in entry)):
        expect_str(entry[name], source=source, where=f"{where}.{name}")
    tolerances = expect_mapping(
        entry.get("nsd_tolerance_mm", {}), source=source, where=f"{where}.nsd_tolerance_mm"
    )
    return {
        "empty": empty,
        "convention": convention,
        "nsd_definition": nsd_definition,
        "ignore_label": None
        if ignore is None
        else expect_int(ignore, source=source, where=f"{where}.ignore_label", minimum=0),
        "label_source": entry["label_source"],
        "nsd_tolerance": {
            str(k): _number(v, source, key_path(f"{where}.nsd_tolerance_mm", str(k)))
            for k, v in tolerances.items()
        },
    }


def _score(
    value: Any, source: str | os.PathLike[str]
) -> tuple[dict[str, Any] | None, float | None]:
    if value is None:
        return None, None
    entry = expect_mapping(value, source=source, where="score")
    check_keys(
        entry, source=source, where="score", allowed=("value", "spec"), required=("value", "spec")
    )
    spec = ScoreSpec.from_dict(entry["spec"], source=f"{os.fspath(source)}: score.spec")
    return spec.to_dict(), _number(entry["value"], source, "score.value")


def _label(
    key: str,
    value: Any,
    source: str | os.PathLike[str],
    columns: Sequence[str],
    *,
    default: bool,
    scored: bool,
) -> LabelSummary:
    where = key_path("mean", key)
    label = parse_label_key(key)
    if label is None:
        raise InputError(
            source, "a label value or a region such as (1, 2)", describe(key), key=where, fix=_FIX
        )
    entry = expect_mapping(value, source=source, where=where)
    required = ["name", "Dice", "IoU", *COUNT_FIELDS, *_COUNTS_OF_CASES]
    if not default:
        required += [*columns, "num_undefined"]
    allowed = [*required, "score"] if scored else required
    check_keys(entry, source=source, where=where, allowed=allowed, required=required)
    keys = {COLUMNS[k]: k for k in COLUMNS}
    undefined: dict[str, int] = {}
    if not default:
        raw = expect_mapping(entry["num_undefined"], source=source, where=f"{where}.num_undefined")
        check_keys(
            raw, source=source, where=f"{where}.num_undefined", allowed=columns, required=columns
        )
        undefined = {
            keys[c]: expect_int(
                raw[c], source=source, where=f"{where}.num_undefined.{c}", minimum=0
            )
            for c in columns
        }
    return LabelSummary(
        label=label,
        name=expect_str(entry["name"], source=source, where=f"{where}.name"),
        dice=_number(entry["Dice"], source, f"{where}.Dice"),
        iou=_number(entry["IoU"], source, f"{where}.IoU"),
        means={name: _number(entry[name], source, f"{where}.{name}") for name in COUNT_FIELDS},
        **{
            name: expect_int(entry[name], source=source, where=f"{where}.{name}", minimum=0)
            for name in _COUNTS_OF_CASES
        },
        values={keys[c]: _number(entry[c], source, f"{where}.{c}") for c in columns},
        num_undefined=undefined,
        score=_number(entry["score"], source, f"{where}.score") if "score" in entry else None,
    )


def _case(
    index: int,
    value: Any,
    source: str | os.PathLike[str],
    label_keys: Sequence[str],
    columns: Sequence[str],
) -> CaseResult:
    where = key_path("metric_per_case", index)
    entry = expect_mapping(value, source=source, where=where)
    check_keys(
        entry,
        source=source,
        where=where,
        allowed=("case", "reference_file", "prediction_file", "metrics"),
        required=("case", "reference_file", "prediction_file", "metrics"),
    )
    per_label = expect_mapping(entry["metrics"], source=source, where=f"{where}.metrics")
    check_keys(
        per_label, source=source, where=f"{where}.metrics", allowed=label_keys, required=label_keys
    )
    fields = ["Dice", "IoU", *COUNT_FIELDS, *columns]
    rows = []
    for key in label_keys:
        at = key_path(f"{where}.metrics", key)
        metrics = expect_mapping(per_label[key], source=source, where=at)
        check_keys(metrics, source=source, where=at, allowed=fields, required=fields)
        rows.append(metrics)
    keys = {COLUMNS[k]: k for k in COLUMNS}
    counts = np.array(
        [
            [expect_int(m[f], source=source, where=f"{where}.{f}", minimum=0) for f in COUNT_FIELDS]
            for m in rows
        ],
        dtype=np.int64,
    ).reshape(len(rows), len(COUNT_FIELDS))

    def column(name: str) -> np.ndarray:
        return np.array(
            [_number(m[name], source, f"{where}.{name}") for m in rows], dtype=np.float64
        )

    return CaseResult(
        case=expect_str(entry["case"], source=source, where=f"{where}.case"),
        reference_file=Path(
            expect_str(entry["reference_file"], source=source, where=f"{where}.reference_file")
        ),
        prediction_file=Path(
            expect_str(entry["prediction_file"], source=source, where=f"{where}.prediction_file")
        ),
        counts=counts,
        dice=column("Dice"),
        iou=column("IoU"),
        values={keys[c]: column(c) for c in columns},
    )
