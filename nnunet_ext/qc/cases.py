"""QC inside a command's output folder: one record per case while it runs, the report at the end.

``ensemble --qc`` and ``predict --qc`` call :func:`check_case` for every case they write, with
the fused probabilities, the fused labels and each member's argmax map; it writes the case's
measures to ``qc/cases/CASE.json`` (so a rerun that skips complete cases keeps them), and with
``--qc-maps`` the disagreement and entropy maps (``qc/maps/CASE_disagreement<ending>``,
``qc/maps/CASE_entropy<ending>``, uint8, written with nnU-Net's writer in the case's geometry)
and, for a flagged case, a PNG of three orthogonal slices (``qc/figures/CASE.png``). After all
cases, :func:`finish_qc` judges the records against the thresholds and writes ``qc.json`` and
``qc.csv`` beside the labels (and ``--qc-report``'s page).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io import atomic_path, load_json, reader_writer, write_json
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import check_keys, expect_mapping
from nnunet_ext.qc.figures import render_case_figure
from nnunet_ext.qc.html import write_html_report
from nnunet_ext.qc.measures import LabelMeasures, disagreement_map, entropy_map, measure_case
from nnunet_ext.qc.report import QcReport, build_report, write_qc
from nnunet_ext.qc.thresholds import QcThresholds, label_reasons

__all__ = [
    "QC_FOLDER",
    "QcContext",
    "QcOptions",
    "check_case",
    "finish_qc",
    "member_names",
    "record_file",
]

#: The sub-folder of an output folder that holds the QC records, maps and figures.
QC_FOLDER = "qc"

_RECORD_KEYS = ("schema_version", "case", "members", "labels")


@dataclass(frozen=True)
class QcOptions:
    """What ``--qc`` writes.

    Attributes:
        thresholds: When a label is flagged (``None``: the spec's ``qc`` thresholds when it
            carries them, else the defaults).
        overrides: Thresholds that replace single values of those (e.g. from the command line).
        maps: Also write the disagreement and entropy maps and the flagged cases' PNGs.
        report: Also write this self-contained HTML page (``None``: none).
    """

    thresholds: QcThresholds | None = None
    overrides: Mapping[str, float | int] = field(default_factory=dict)
    maps: bool = False
    report: Path | None = None

    def resolve(self, spec_thresholds: QcThresholds | None = None) -> QcThresholds:
        """The thresholds to use: ``thresholds``, else ``spec_thresholds``, with ``overrides``.

        Examples:
            >>> options = QcOptions(overrides={"max_components": 2})
            >>> options.resolve(QcThresholds(min_member_dice=0.5)).max_components
            2
            >>> options.resolve(QcThresholds(min_member_dice=0.5)).min_member_dice
            0.5
        """
        base = self.thresholds or spec_thresholds or QcThresholds()
        return base.with_overrides(**self.overrides)


@dataclass(frozen=True)
class QcContext:
    """What every case of one QC run shares (picklable).

    Attributes:
        options: The QC options.
        thresholds: The resolved thresholds (:meth:`QcOptions.resolve`).
        output_dir: The command's output folder.
        member_names: The members' names, in member order.
        label_names: Foreground label value to name.
        file_ending: The label file ending (for the maps).
        writer_name: nnU-Net's image reader/writer for the maps.
    """

    options: QcOptions
    thresholds: QcThresholds
    output_dir: Path
    member_names: tuple[str, ...]
    label_names: Mapping[int, str]
    file_ending: str
    writer_name: str


def record_file(output_dir: Path, case_id: str) -> Path:
    """The QC record of ``case_id`` in ``output_dir``."""
    return output_dir / QC_FOLDER / "cases" / f"{case_id}.json"


def _figure_file(output_dir: Path, case_id: str) -> Path:
    return output_dir / QC_FOLDER / "figures" / f"{case_id}.png"


def _voxel_volume_ml(properties: Mapping[str, Any]) -> float:
    spacing = properties.get("spacing")
    if not isinstance(spacing, (list, tuple)) or not spacing:
        return 0.001  # 1 mm^3 when the properties carry no spacing
    volume = math.prod(float(s) for s in spacing) / 1000.0
    return volume if math.isfinite(volume) and volume > 0 else 0.001


def check_case(
    context: QcContext,
    case_id: str,
    probabilities: NDArray[np.floating[Any]],
    labels: NDArray[np.integer[Any]],
    member_labels: Sequence[NDArray[np.integer[Any]]],
    properties: Mapping[str, Any],
    weights: NDArray[np.floating[Any]] | None = None,
) -> tuple[LabelMeasures, ...]:
    """Measure one case, write its record (and maps and figure when asked).

    Args:
        context: The run's QC context.
        case_id: The case.
        probabilities: Fused probabilities ``(C, ...)``.
        labels: The fused labels (spatial shape, before any 2D padding of the writer).
        member_labels: Each member's argmax map.
        properties: nnU-Net's properties of the case (spacing, geometry for the writer).
        weights: The fusion's normalised ``(M, C)`` weights (``None``: equal), for the
            estimated Dice.

    Returns:
        The case's measures.
    """
    out = context.output_dir
    measures = measure_case(
        probabilities,
        labels,
        member_labels,
        voxel_volume_ml=_voxel_volume_ml(properties),
        label_ids=sorted(context.label_names),
        weights=weights,
    )
    if context.options.maps:
        _write_maps(context, case_id, probabilities, labels, member_labels, properties)
    flagged = [m.label for m in measures if _reasons(context, m)]
    if flagged and (context.options.maps or context.options.report is not None):
        render_case_figure(
            labels,
            member_labels,
            entropy_map(probabilities),
            _figure_file(out, case_id),
            member_names=context.member_names,
            title=f"{case_id}: {', '.join(context.label_names[v] for v in flagged)}",
            label_ids=flagged,
            spacing=properties.get("spacing"),
        )
    record = {
        "schema_version": 1,
        "case": case_id,
        "members": list(context.member_names),
        "labels": [dataclasses.asdict(m) for m in measures],
    }
    record_file(out, case_id).parent.mkdir(parents=True, exist_ok=True)
    write_json(record_file(out, case_id), record)
    return measures


def _reasons(context: QcContext, measures: LabelMeasures) -> tuple[str, ...]:
    return label_reasons(
        measures,
        context.thresholds,
        member_names=context.member_names,
        label_name=context.label_names.get(measures.label),
    )


def _write_maps(
    context: QcContext,
    case_id: str,
    probabilities: NDArray[np.floating[Any]],
    labels: NDArray[np.integer[Any]],
    member_labels: Sequence[NDArray[np.integer[Any]]],
    properties: Mapping[str, Any],
) -> None:
    folder = context.output_dir / QC_FOLDER / "maps"
    folder.mkdir(parents=True, exist_ok=True)
    writer = reader_writer(context.writer_name)
    maps = {
        "disagreement": disagreement_map(labels, member_labels),
        "entropy": entropy_map(probabilities),
    }
    for name, array in maps.items():
        image = array[None] if array.ndim == 2 else array
        with atomic_path(folder / f"{case_id}_{name}{context.file_ending}") as tmp:
            writer.write_seg(image, str(tmp), dict(properties))


def _read_record(file: Path, members: Sequence[str]) -> tuple[LabelMeasures, ...]:
    source = str(file)
    obj = expect_mapping(load_json(file), source=source, where=None)
    check_keys(obj, source=source, where=None, allowed=_RECORD_KEYS, required=_RECORD_KEYS)
    if obj["schema_version"] != 1 or obj["members"] != list(members):
        raise InputError(
            file,
            f"a version 1 QC record of the members {list(members)}",
            f"version {obj['schema_version']!r} of {obj['members']!r}",
            fix="Rerun with overwrite=True to redo the QC of every case.",
        )
    names = [f.name for f in dataclasses.fields(LabelMeasures)]
    labels = []
    for index, item in enumerate(obj["labels"]):
        where = f"labels[{index}]"
        item = expect_mapping(item, source=source, where=where)
        check_keys(item, source=source, where=where, allowed=names, required=names)
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in item.items()
        }
        labels.append(LabelMeasures(**values))
    return tuple(labels)


def finish_qc(context: QcContext, case_ids: Sequence[str]) -> QcReport:
    """Judge the records of ``case_ids`` and write ``qc.json``, ``qc.csv`` (and the page).

    Raises:
        FileNotFoundError: If a case has no record.
        InputError: If a record is malformed or from other members.
    """
    out = context.output_dir
    measures = {}
    for case in sorted(case_ids):
        file = record_file(out, case)
        if not file.is_file():
            raise FileNotFoundError(
                f"{file} not found: the QC record of case {case!r}. Rerun with qc=True."
            )
        measures[case] = _read_record(file, context.member_names)
    report = build_report(
        measures,
        member_names=context.member_names,
        label_names=context.label_names,
        thresholds=context.thresholds,
    )
    write_qc(report, out)
    if context.options.report is not None:
        figures = {
            case.case: _figure_file(out, case.case)
            for case in report.flagged
            if _figure_file(out, case.case).is_file()
        }
        write_html_report(report, figures, context.options.report)
    return report


def member_names(
    paths: Sequence[os.PathLike[str] | str], names: Sequence[str | None]
) -> tuple[str, ...]:
    """Members' display names: their spec ``name``, else their folder name (made unique)."""
    chosen: list[str] = []
    for index, (path, name) in enumerate(zip(paths, names, strict=True)):
        text = name or Path(path).name or f"member{index}"
        chosen.append(text if text not in chosen else f"{text}#{index}")
    return tuple(chosen)
