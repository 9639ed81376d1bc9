"""The QC report: ``qc.json`` (strict, versioned) and ``qc.csv``, written and read back.

``qc.json``::

    {"schema_version": 1, "tool": "nnunet_ext.qc", "members": ["2d", "3d_fullres"],
     "thresholds": {...},                       # QcThresholds.to_dict()
     "cases": [{"case": "heart_007", "flagged": true, "risk": 0.62,
                "labels": [{"label": 2, "name": "RV", "volume_ml": 31.2,
                            "member_volumes_ml": [30.9, 0.0], "member_dice": [0.99, 0.0],
                            "volume_cv": 1.0, "empty_members": ["3d_fullres"],
                            "components": 1, "island_fraction": 0.0, "soft_dice": 0.41,
                            "estimated_dice": 0.99,
                            "reasons": ["member 3d_fullres predicts no voxel ..."]}]}]}

Cases are sorted by risk (flagged first, then ``risk`` descending): ``risk`` is the largest
``1 - min(estimated Dice, lowest Dice of the members that predict the label)`` over the case's
labels (a member that predicts nothing of a label is flagged anyway; leaving it out of the risk
lets the estimate rank such cases). ``qc.csv`` has one row
per case and label (:data:`CSV_COLUMNS`); its ``flag`` column holds the reasons joined by
``"; "``, empty when the label is not flagged.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnunet_ext.io import atomic_path, load_json, write_json
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import (
    check_keys,
    expect_bool,
    expect_int,
    expect_mapping,
    expect_number,
    expect_str,
    key_path,
)
from nnunet_ext.qc.measures import LabelMeasures
from nnunet_ext.qc.thresholds import QcThresholds, label_reasons

__all__ = [
    "CSV_COLUMNS",
    "SCHEMA_VERSION",
    "CaseQuality",
    "LabelQuality",
    "QcReport",
    "build_report",
    "load_qc",
    "load_qc_csv",
    "write_qc",
]

SCHEMA_VERSION = 1

#: The columns of ``qc.csv``, in order.
CSV_COLUMNS = (
    "case",
    "label",
    "name",
    "flag",
    "estimated_dice",
    "min_member_dice",
    "volume_cv",
    "components",
    "island_fraction",
    "soft_dice",
    "volume_ml",
    "member_dice",
    "member_volumes_ml",
    "empty_members",
)

_TOP_KEYS = ("schema_version", "tool", "members", "thresholds", "cases")
_CASE_KEYS = ("case", "flagged", "risk", "labels")
_LABEL_KEYS = (
    "label",
    "name",
    "volume_ml",
    "member_volumes_ml",
    "member_dice",
    "volume_cv",
    "empty_members",
    "components",
    "island_fraction",
    "soft_dice",
    "estimated_dice",
    "reasons",
)


@dataclass(frozen=True)
class LabelQuality:
    """One label of one case: its measures, its name and the reasons to flag it."""

    measures: LabelMeasures
    name: str
    reasons: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        """Whether any reason flags the label."""
        return bool(self.reasons)

    @property
    def risk(self) -> float:
        """``1 - min(estimated Dice, lowest Dice of the non-empty members)``, in ``[0, 1]``."""
        m = self.measures
        present = [d for i, d in enumerate(m.member_dice) if i not in m.empty_members]
        return max(0.0, 1.0 - min([m.estimated_dice, *present]))


@dataclass(frozen=True)
class CaseQuality:
    """The labels of one case."""

    case: str
    labels: tuple[LabelQuality, ...]

    @property
    def flagged(self) -> bool:
        """Whether any label is flagged."""
        return any(label.flagged for label in self.labels)

    @property
    def risk(self) -> float:
        """The largest label risk (0 without labels)."""
        return max((label.risk for label in self.labels), default=0.0)


@dataclass(frozen=True)
class QcReport:
    """The QC of a folder: members, thresholds and the cases, riskiest first."""

    members: tuple[str, ...]
    thresholds: QcThresholds
    cases: tuple[CaseQuality, ...]

    @property
    def flagged(self) -> tuple[CaseQuality, ...]:
        """The flagged cases, riskiest first."""
        return tuple(case for case in self.cases if case.flagged)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": "nnunet_ext.qc",
            "members": list(self.members),
            "thresholds": self.thresholds.to_dict(),
            "cases": [
                {
                    "case": case.case,
                    "flagged": case.flagged,
                    "risk": round(case.risk, 6),
                    "labels": [_label_dict(label, self.members) for label in case.labels],
                }
                for case in self.cases
            ],
        }


def _label_dict(label: LabelQuality, members: Sequence[str]) -> dict[str, Any]:
    m = label.measures
    return {
        "label": m.label,
        "name": label.name,
        "volume_ml": m.volume_ml,
        "member_volumes_ml": list(m.member_volumes_ml),
        "member_dice": list(m.member_dice),
        "volume_cv": m.volume_cv,
        "empty_members": [members[i] for i in m.empty_members],
        "components": m.components,
        "island_fraction": m.island_fraction,
        "soft_dice": m.soft_dice,
        "estimated_dice": m.estimated_dice,
        "reasons": list(label.reasons),
    }


def build_report(
    measures: Mapping[str, Sequence[LabelMeasures]],
    *,
    member_names: Sequence[str],
    label_names: Mapping[int, str],
    thresholds: QcThresholds,
) -> QcReport:
    """Judge every case's measures against ``thresholds``; cases sorted by risk.

    Args:
        measures: Case ID to its labels' measures (:func:`~nnunet_ext.qc.measures.measure_case`).
        member_names: The members' names, in member order.
        label_names: Label value to name (``dataset.json``).
        thresholds: When to flag.

    Returns:
        The report, flagged cases first, then by risk, then by case ID.
    """
    cases = []
    for case, labels in measures.items():
        judged = tuple(
            LabelQuality(
                m,
                label_names.get(m.label, str(m.label)),
                label_reasons(
                    m,
                    thresholds,
                    member_names=member_names,
                    label_name=label_names.get(m.label),
                ),
            )
            for m in labels
        )
        cases.append(CaseQuality(case, judged))
    cases.sort(key=lambda c: (not c.flagged, -c.risk, c.case))
    return QcReport(tuple(member_names), thresholds, tuple(cases))


def _csv_text(report: QcReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    names = report.members
    for case in report.cases:
        for label in case.labels:
            m = label.measures
            writer.writerow(
                [
                    case.case,
                    m.label,
                    label.name,
                    "; ".join(label.reasons),
                    f"{m.estimated_dice:.4f}",
                    f"{min(m.member_dice):.4f}",
                    f"{m.volume_cv:.4f}",
                    m.components,
                    f"{m.island_fraction:.4f}",
                    f"{m.soft_dice:.4f}",
                    f"{m.volume_ml:.6g}",
                    " ".join(f"{n}={d:.4f}" for n, d in zip(names, m.member_dice, strict=True)),
                    " ".join(
                        f"{n}={v:.6g}" for n, v in zip(names, m.member_volumes_ml, strict=True)
                    ),
                    " ".join(names[i] for i in m.empty_members),
                ]
            )
    return buffer.getvalue()


def write_qc(report: QcReport, output_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``qc.json`` and ``qc.csv`` into ``output_dir``, each atomically.

    Returns:
        The two paths.
    """
    out = Path(output_dir)
    json_file = write_json(out / "qc.json", report.to_dict())
    csv_file = out / "qc.csv"
    with atomic_path(csv_file) as tmp:
        tmp.write_text(_csv_text(report), encoding="utf-8")
    return json_file, csv_file


def _numbers(value: Any, source: str, where: str, count: int) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != count:
        raise InputError(
            source, f"a list of {count} numbers (one per member)", repr(value), key=where
        )
    return tuple(
        expect_number(v, source=source, where=key_path(where, i), minimum=0)
        for i, v in enumerate(value)
    )


def _strings(value: Any, source: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InputError(source, "a list of strings", repr(value), key=where)
    return tuple(
        expect_str(v, source=source, where=key_path(where, i)) for i, v in enumerate(value)
    )


def _parse_label(data: Any, source: str, where: str, members: Sequence[str]) -> LabelQuality:
    obj = expect_mapping(data, source=source, where=where)
    check_keys(obj, source=source, where=where, allowed=_LABEL_KEYS, required=_LABEL_KEYS)
    empty = _strings(obj["empty_members"], source, key_path(where, "empty_members"))
    unknown = [name for name in empty if name not in members]
    if unknown:
        raise InputError(
            source, f"member names ({', '.join(members)})", repr(unknown[0]), key=where
        )
    n = len(members)
    measures = LabelMeasures(
        label=expect_int(obj["label"], source=source, where=key_path(where, "label"), minimum=1),
        volume_ml=expect_number(
            obj["volume_ml"], source=source, where=key_path(where, "volume_ml")
        ),
        member_volumes_ml=_numbers(
            obj["member_volumes_ml"], source, f"{where}.member_volumes_ml", n
        ),
        member_dice=_numbers(obj["member_dice"], source, f"{where}.member_dice", n),
        volume_cv=expect_number(
            obj["volume_cv"], source=source, where=key_path(where, "volume_cv")
        ),
        empty_members=tuple(members.index(name) for name in empty),
        components=expect_int(obj["components"], source=source, where=f"{where}.components"),
        island_fraction=expect_number(
            obj["island_fraction"], source=source, where=f"{where}.island_fraction", minimum=0
        ),
        soft_dice=expect_number(obj["soft_dice"], source=source, where=f"{where}.soft_dice"),
        estimated_dice=expect_number(
            obj["estimated_dice"], source=source, where=key_path(where, "estimated_dice")
        ),
    )
    name = expect_str(obj["name"], source=source, where=key_path(where, "name"))
    return LabelQuality(measures, name, _strings(obj["reasons"], source, f"{where}.reasons"))


def _parse_case(data: Any, source: str, where: str, members: Sequence[str]) -> CaseQuality:
    obj = expect_mapping(data, source=source, where=where)
    check_keys(obj, source=source, where=where, allowed=_CASE_KEYS, required=_CASE_KEYS)
    expect_bool(obj["flagged"], source=source, where=key_path(where, "flagged"))
    expect_number(obj["risk"], source=source, where=key_path(where, "risk"))
    labels = obj["labels"]
    if not isinstance(labels, list):
        raise InputError(source, "a list of labels", repr(labels), key=f"{where}.labels")
    return CaseQuality(
        expect_str(obj["case"], source=source, where=key_path(where, "case")),
        tuple(
            _parse_label(item, source, f"{where}.labels[{i}]", members)
            for i, item in enumerate(labels)
        ),
    )


def load_qc(path: str | os.PathLike[str]) -> QcReport:
    """Read ``qc.json`` strictly: every key known and present, every value typed.

    Raises:
        FileNotFoundError: If the file does not exist.
        InputError: (a ``ValueError``) naming the file and the key path of the first problem.
    """
    source = str(path)
    obj = expect_mapping(load_json(path), source=source, where=None)
    check_keys(obj, source=source, where=None, allowed=_TOP_KEYS, required=_TOP_KEYS)
    if isinstance(obj["schema_version"], bool) or obj["schema_version"] != SCHEMA_VERSION:
        raise InputError(
            source,
            str(SCHEMA_VERSION),
            repr(obj["schema_version"]),
            key="schema_version",
            fix="Write it with this version of nnunet_ext.",
        )
    if obj["tool"] != "nnunet_ext.qc":
        raise InputError(source, "'nnunet_ext.qc'", repr(obj["tool"]), key="tool")
    members = _strings(obj["members"], source, "members")
    thresholds = QcThresholds.from_dict(obj["thresholds"], source=source, where="thresholds")
    if not isinstance(obj["cases"], list):
        raise InputError(source, "a list of cases", repr(obj["cases"]), key="cases")
    cases = tuple(
        _parse_case(item, source, f"cases[{i}]", members) for i, item in enumerate(obj["cases"])
    )
    return QcReport(members, thresholds, cases)


def load_qc_csv(path: str | os.PathLike[str]) -> dict[str, list[tuple[str, str]]]:
    """Every case of ``qc.csv``: case ID to its flagged labels' ``(name, reasons)`` pairs.

    A case that is not flagged maps to an empty list.

    Raises:
        FileNotFoundError: If the file does not exist.
        InputError: If the header is not :data:`CSV_COLUMNS` or a row has another length.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"QC table not found: {file}")
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(file, "a UTF-8 CSV table (qc.csv)", f"unreadable text ({err})") from err
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        raise InputError(
            file,
            f"a qc.csv header ({','.join(CSV_COLUMNS)})",
            repr(",".join(rows[0]) if rows else ""),
            fix="Pass the qc.csv that the QC of ensemble or predict wrote.",
        )
    flagged: dict[str, list[tuple[str, str]]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(CSV_COLUMNS):
            raise InputError(file, f"{len(CSV_COLUMNS)} columns", f"{len(row)} on line {number}")
        case, _, name, flag = row[:4]
        flagged.setdefault(case, [])
        if flag:
            flagged[case].append((name, flag))
    return flagged
