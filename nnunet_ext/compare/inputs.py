"""The evaluations to compare, read and checked against each other once, before any statistics.

Every file is read by ``evaluate``'s own reader
(:func:`~nnunet_ext.evaluate.reader.load_evaluation`); then each is checked against the first:
the same labels, metrics, conventions and score file, and the same cases (or, with
``common_cases``, the cases all of them have). A mismatch is one line naming the file, what
differs and how to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.evaluate import Evaluation
from nnunet_ext.evaluate.measures import COLUMNS, HIGHER_IS_BETTER
from nnunet_ext.evaluate.metrics import label_key
from nnunet_ext.evaluate.reader import load_evaluation
from nnunet_ext.evaluate.score import ScoreSpec

__all__ = ["Versions", "compared_column", "read_versions", "version_names"]

#: Metrics without a better direction: compared by their absolute value, closer to 0 better.
_ABSOLUTE = ("volume_diff_ml", "volume_diff_rel")
_SHOWN = 5


def compared_column(key: str) -> tuple[str, bool]:
    """The name a metric key is compared under and whether higher is better.

    Signed volume differences have no better direction; their absolute value (the volume
    error) is compared, lower better.

    Examples:
        >>> compared_column("dice"), compared_column("hd95"), compared_column("volume_diff_ml")
        (('Dice', True), ('HD95', False), ('|VolumeDiff_ml|', False))
    """
    if key in _ABSOLUTE:
        return f"|{COLUMNS[key]}|", False
    return COLUMNS[key], HIGHER_IS_BETTER[key]


@dataclass(frozen=True)
class Versions:
    """The compared versions' per-case values, aligned on the same cases, labels and metrics.

    Attributes:
        names: One name per version.
        paths: The evaluation files.
        cases: The compared cases (sorted).
        left_out: Per version name, its cases left out (only with ``common_cases``).
        label_keys: The labels' keys (``"1"``, ``"(1, 2)"``).
        label_names: Their names.
        metrics: The compared columns (``Dice``, ``HD95``, ``|VolumeDiff_ml|``...).
        higher_is_better: ``(metrics,)`` direction of each.
        values: ``(versions, cases, labels, metrics)`` values entering the means.
        score: The score file all were evaluated with, if any.
        score_terms: ``(versions, cases, labels, terms)`` the score's per-case term values.
        conventions: The shared conventions (``empty``, ``convention``, ``ignore_label``...).
    """

    names: tuple[str, ...]
    paths: tuple[Path, ...]
    cases: tuple[str, ...]
    left_out: dict[str, list[str]]
    label_keys: tuple[str, ...]
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    higher_is_better: NDArray[np.bool_]
    values: NDArray[np.float64]
    score: ScoreSpec | None
    score_terms: NDArray[np.float64] | None
    conventions: dict[str, Any]


def version_names(paths: Sequence[Path], names: Sequence[str] | None = None) -> tuple[str, ...]:
    """A distinct name per file: ``names`` if given, else the file stems.

    Two equal stems get their folder's name in front.

    Examples:
        >>> version_names([Path("a/summary.json"), Path("b/summary.json")])
        ('a/summary', 'b/summary')
        >>> version_names([Path("equal.json"), Path("tuned.json")])
        ('equal', 'tuned')
    """
    if names is not None:
        if len(names) != len(paths) or len(set(names)) != len(names) or not all(names):
            raise ValueError(
                f"names must be {len(paths)} distinct non-empty names, one per evaluation; "
                f"got {list(names)}."
            )
        return tuple(names)
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return tuple(stems)
    long = [f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem for p in paths]
    if len(set(long)) == len(long):
        return tuple(long)
    return tuple(f"{i + 1}:{p.stem}" for i, p in enumerate(paths))


def _shown(items: Sequence[str]) -> str:
    head = ", ".join(items[:_SHOWN])
    return head + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _conventions(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "empty": evaluation.empty,
        "convention": evaluation.convention,
        "ignore_label": evaluation.ignore_label,
        "nsd_tolerance_mm": dict(evaluation.nsd_tolerance),
    }


def _check_alike(first: Evaluation, first_path: Path, other: Evaluation, path: Path) -> None:
    """One line naming ``path`` if it was evaluated otherwise than ``first_path``."""
    fix = f"Evaluate both with the same {{}} (as {first_path.name})."
    checks = (
        (
            "labels",
            [label_key(s.label) for s in first.labels],
            [label_key(s.label) for s in other.labels],
        ),
        ("metrics", list(first.metrics), list(other.metrics)),
        ("conventions", _conventions(first), _conventions(other)),
        ("NSD definition", first.nsd_definition, other.nsd_definition),
        ("score file", first.score_spec, other.score_spec),
    )
    for what, expected, found in checks:
        if expected != found:
            raise ValueError(
                f"{path}: {what} must be those of {first_path} ({expected}); got {found}. "
                + fix.format(what)
            )


def _case_rows(evaluation: Evaluation, path: Path) -> dict[str, int]:
    rows: dict[str, int] = {}
    for i, case in enumerate(evaluation.cases):
        if case.case in rows:
            raise ValueError(f"{path}: case {case.case!r} must appear once; it appears twice.")
        rows[case.case] = i
    return rows


def _common(
    rows: Sequence[dict[str, int]], paths: Sequence[Path], names: Sequence[str], common_cases: bool
) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """The compared cases and, per version, those left out.

    Different case sets are an error unless ``common_cases``.
    """
    first = set(rows[0])
    shared = sorted(set.intersection(*(set(r) for r in rows)))
    if not common_cases:
        for path, r in zip(paths[1:], rows[1:], strict=True):
            missing, extra = sorted(first - set(r)), sorted(set(r) - first)
            if missing or extra:
                raise ValueError(
                    f"{path}: cases must be those of {paths[0]}; got {len(missing)} missing "
                    f"({_shown(missing) or 'none'}) and {len(extra)} extra "
                    f"({_shown(extra) or 'none'}). Evaluate the same cases, or pass "
                    f"common_cases=True to compare the {len(shared)} cases all files have."
                )
    if not shared:
        raise ValueError(
            f"evaluations must share cases to compare; {', '.join(map(str, paths))} have none "
            "in common."
        )
    left_out = {name: sorted(set(r) - set(shared)) for name, r in zip(names, rows, strict=True)}
    return tuple(shared), left_out


def read_versions(
    evaluations: Sequence[str | os.PathLike[str]],
    *,
    names: Sequence[str] | None = None,
    common_cases: bool = False,
) -> Versions:
    """Read the evaluation files and align their per-case values.

    Args:
        evaluations: Two or more files written by ``nnunet-ext evaluate --json``.
        names: One name per file (default: the file stems).
        common_cases: Compare the cases all files have (and report the others) instead of
            refusing files of different cases.

    Raises:
        FileNotFoundError: If a file does not exist.
        ValueError: If a file is not an evaluation, or differs from the first in its labels,
            metrics, conventions, score file or (without ``common_cases``) cases.
    """
    paths = tuple(Path(p) for p in evaluations)
    if len(paths) < 2:
        raise ValueError(f"evaluations must list at least two evaluation files; got {len(paths)}.")
    labels = version_names(paths, names)
    read = [load_evaluation(p) for p in paths]
    for evaluation, path in zip(read[1:], paths[1:], strict=True):
        _check_alike(read[0], paths[0], evaluation, path)
    rows = [_case_rows(e, p) for e, p in zip(read, paths, strict=True)]
    cases, left_out = _common(rows, paths, labels, common_cases)
    first = read[0]
    keys = ("dice", "iou", *first.value_keys)
    compared = [compared_column(k) for k in keys]
    values = np.stack([_values(e, r, cases, keys) for e, r in zip(read, rows, strict=True)])
    spec = None if first.score_spec is None else ScoreSpec.from_dict(first.score_spec)
    terms = None
    if spec is not None:
        terms = np.stack([_terms(e, r, cases, spec) for e, r in zip(read, rows, strict=True)])
    return Versions(
        names=labels,
        paths=paths,
        cases=cases,
        left_out=left_out,
        label_keys=tuple(label_key(s.label) for s in first.labels),
        label_names=tuple(s.name for s in first.labels),
        metrics=tuple(name for name, _ in compared),
        higher_is_better=np.array([higher for _, higher in compared], dtype=bool),
        values=values,
        score=spec,
        score_terms=terms,
        conventions=_conventions(first),
    )


def _values(
    evaluation: Evaluation, rows: dict[str, int], cases: Sequence[str], keys: Sequence[str]
) -> NDArray[np.float64]:
    """``(cases, labels, metrics)`` values of the compared cases, as they enter the means."""
    pick = [rows[c] for c in cases]
    columns = [evaluation.case_values(k)[pick] for k in keys]
    stacked = np.stack(columns, axis=-1)
    absolute = [i for i, k in enumerate(keys) if k in _ABSOLUTE]
    stacked[..., absolute] = np.abs(stacked[..., absolute])
    return stacked


def _terms(
    evaluation: Evaluation, rows: dict[str, int], cases: Sequence[str], spec: ScoreSpec
) -> NDArray[np.float64]:
    """``(cases, labels, terms)`` the score's terms per case.

    From the per-case values that ``evaluate`` scores: Dice and IoU as computed, whatever the
    empty policy.
    """
    pick = [rows[c] for c in cases]
    per_case = {
        "dice": np.array([c.dice for c in evaluation.cases], dtype=np.float64),
        "iou": np.array([c.iou for c in evaluation.cases], dtype=np.float64),
        **{k: np.array([c.values[k] for c in evaluation.cases]) for k in evaluation.value_keys},
    }
    return spec.term_values(
        {k: v.reshape(len(evaluation.cases), -1)[pick] for k, v in per_case.items()}
    )
