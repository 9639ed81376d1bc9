"""The ``--qc`` flags that ``ensemble`` and ``predict`` share, and the options they give."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ext.qc.cases import QcOptions
from nnunet_ext.qc.thresholds import QcThresholds

__all__ = ["QC_PARAMETER_FLAGS", "add_qc_arguments", "qc_options_from_args"]


_THRESHOLD_FLAGS = (
    ("min_member_dice", "X", float, "flag a member whose Dice against the fused label is below X"),
    ("max_volume_cv", "X", float, "flag a members' volume coefficient of variation above X"),
    ("min_estimated_dice", "X", float, "flag an estimated Dice below X"),
    ("max_island_fraction", "X", float, "flag a second-largest component above X of the label"),
    ("max_components", "N", int, "flag a fused label with more than N connected components"),
    ("volume_margin", "X", float, "widen the spec's CV volume ranges by X (relative) each side"),
)


#: Parameter (and ``dest``) -> flag, for ``_cli.Command(parameter_flags=...)``.
QC_PARAMETER_FLAGS = {
    "qc": "--qc",
    "qc_maps": "--qc-maps",
    "qc_report": "--qc-report",
    **{f"qc_{name}": f"--qc-{name.replace('_', '-')}" for name, *_ in _THRESHOLD_FLAGS},
}


def _default(value: object) -> str:
    return "off" if value is None else str(value)


def add_qc_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--qc``, ``--qc-maps``, ``--qc-report`` and the threshold flags to ``parser``."""
    group = parser.add_argument_group(
        "quality check", "per-case, per-label flags from the members' disagreement"
    )
    group.add_argument(
        "--qc",
        action="store_true",
        help="write qc.json and qc.csv beside the labels: per case and label the members' Dice "
        "against the fused label, volume CV, empty members, components, estimated Dice, and a "
        "flag with its reasons",
    )
    group.add_argument(
        "--qc-maps",
        action="store_true",
        help="with --qc: also write qc/maps/CASE_disagreement and CASE_entropy (uint8) and a "
        "PNG per flagged case (qc/figures/)",
    )
    group.add_argument(
        "--qc-report",
        type=Path,
        metavar="REPORT.html",
        help="with --qc: also write one self-contained HTML page of the cases by risk",
    )
    defaults = QcThresholds()
    for name, metavar, kind, text in _THRESHOLD_FLAGS:
        group.add_argument(
            f"--qc-{name.replace('_', '-')}",
            dest=f"qc_{name}",
            type=kind,
            metavar=metavar,
            help=f"{text} (default {_default(getattr(defaults, name))}, or the spec's value)",
        )


def qc_options_from_args(args: argparse.Namespace) -> QcOptions | None:
    """The QC options of parsed ``args`` (``None`` without ``--qc``).

    The threshold flags override single values of the spec's thresholds (or the defaults).

    Raises:
        ValueError: If a QC flag is given without ``--qc``, or a threshold is negative.
    """
    overrides = {name: getattr(args, f"qc_{name}", None) for name, *_ in _THRESHOLD_FLAGS}
    extras = (
        args.qc_maps or args.qc_report is not None or any(v is not None for v in overrides.values())
    )
    if not args.qc:
        if extras:
            raise ValueError(
                "qc=True must come with qc_maps, qc_report and the QC thresholds; got them "
                "without it. Add qc=True."
            )
        return None
    for name, value in overrides.items():
        if value is not None and value < 0:
            raise ValueError(f"qc_{name} must be >= 0; got {value}.")
    kept = {k: v for k, v in overrides.items() if v is not None}
    return QcOptions(overrides=kept, maps=bool(args.qc_maps), report=args.qc_report)
