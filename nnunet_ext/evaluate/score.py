"""Score files: one leaderboard number from per-label metrics (``evaluate --score SCORE.json``).

The file is strict JSON with ``schema_version`` 1; unknown keys are errors::

    {"schema_version": 1,
     "name": "Dice and capped HD95",
     "terms": [{"metric": "dice", "weight": 0.5},
               {"metric": "hd95", "weight": 0.5, "cap_mm": 20}],
     "label_weights": {"1": 1, "2": 1, "3": 2}}

A term of an overlap metric (``dice``, ``iou``, ``nsd``) contributes its value; a term of a
distance metric (``hd``, ``hd95``, ``hd95_pooled``, ``assd``) needs ``cap_mm`` and contributes
``1 - min(d, cap_mm) / cap_mm`` (1 for a perfect boundary, 0 at or beyond the cap). So the
example is ``0.5 * Dice + 0.5 * (1 - min(HD95, 20 mm) / 20 mm)``.

How it is combined, exactly:

1. per case and label, each term's value is transformed as above;
2. per label and term, the mean over cases of the defined (non-NaN) values;
3. per label, the label score ``sum(weight_t * mean_t)`` (NaN if a term has no defined case);
4. the score: the mean of the label scores weighted by ``label_weights`` (labels not listed
   weigh 1), over labels whose score is defined. Higher is better.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io import load_json

__all__ = ["SCHEMA_VERSION", "ScoreSpec", "ScoreTerm", "load_score"]

#: Version of the score file layout.
SCHEMA_VERSION = 1

_OVERLAP = ("dice", "iou", "nsd")
_DISTANCE = ("hd", "hd95", "hd95_pooled", "assd")
_TOP_KEYS = {"schema_version", "name", "terms", "label_weights"}
_TERM_KEYS = {"metric", "weight", "cap_mm"}


def _number(value: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number; got {value!r}.")
    if positive and value <= 0:
        raise ValueError(f"{where} must be > 0; got {value!r}.")
    if value < 0:
        raise ValueError(f"{where} must be >= 0; got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class ScoreTerm:
    """One weighted term of a score.

    Attributes:
        metric: Metric name (``dice``, ``iou``, ``nsd``, ``hd``, ``hd95``, ``hd95_pooled``,
            ``assd``).
        weight: Its weight.
        cap_mm: For distance metrics, the distance scored 0.
    """

    metric: str
    weight: float
    cap_mm: float | None = None

    def transform(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map metric values to ``[0, 1]``-style contributions (higher is better; NaN stays).

        Examples:
            >>> ScoreTerm("hd95", 0.5, 20.0).transform(np.array([0.0, 5.0, 40.0])).tolist()
            [1.0, 0.75, 0.0]
        """
        v = np.asarray(values, dtype=np.float64)
        if self.cap_mm is None:
            return v
        return 1.0 - np.minimum(v, self.cap_mm) / self.cap_mm


@dataclass(frozen=True)
class ScoreSpec:
    """A parsed score file.

    Attributes:
        terms: The weighted terms.
        label_weights: Label key (``"1"``, ``"(1, 2)"``) to weight; unlisted labels weigh 1.
        name: Free text shown in reports (default: the file's name).
        source: Where it was read from.
    """

    terms: tuple[ScoreTerm, ...]
    label_weights: Mapping[str, float]
    name: str = "score"
    source: str = "score"

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names the score needs.

        Examples:
            >>> ScoreSpec.from_dict({"schema_version": 1, "terms": [
            ...     {"metric": "dice", "weight": 1}]}).metrics
            ('dice',)
        """
        return tuple(dict.fromkeys(t.metric for t in self.terms))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "score") -> ScoreSpec:
        """Validate a score file's content.

        Raises:
            ValueError: One line naming the file, the key and what is expected.

        Examples:
            >>> ScoreSpec.from_dict({"schema_version": 1, "terms": [
            ...     {"metric": "hd95", "weight": 1}]}, source="s.json")
            Traceback (most recent call last):
            ...
            ValueError: s.json: terms[0]: metric 'hd95' is a distance; give cap_mm ...
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: a score file must hold a JSON object.")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"{source}: schema_version must be {SCHEMA_VERSION}; "
                f"got {data.get('schema_version')!r}."
            )
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; known: {sorted(_TOP_KEYS)}.")
        raw_terms = data.get("terms")
        if not isinstance(raw_terms, list) or not raw_terms:
            raise ValueError(f"{source}: 'terms' must be a non-empty list of terms.")
        terms = []
        for i, raw in enumerate(raw_terms):
            where = f"{source}: terms[{i}]"
            if not isinstance(raw, Mapping):
                raise ValueError(f"{where} must be an object with metric and weight.")
            bad = sorted(set(raw) - _TERM_KEYS)
            if bad:
                raise ValueError(f"{where}: unknown key(s) {bad}; known: {sorted(_TERM_KEYS)}.")
            metric = raw.get("metric")
            if metric not in _OVERLAP + _DISTANCE:
                raise ValueError(
                    f"{where}: metric must be one of {', '.join(_OVERLAP + _DISTANCE)}; "
                    f"got {metric!r}."
                )
            weight = _number(raw.get("weight"), f"{where}: weight")
            cap = raw.get("cap_mm")
            if metric in _DISTANCE and cap is None:
                raise ValueError(
                    f"{where}: metric {metric!r} is a distance; give cap_mm (the distance "
                    "scored 0), e.g. 20."
                )
            if metric in _OVERLAP and cap is not None:
                raise ValueError(f"{where}: cap_mm applies to distances only, not {metric!r}.")
            terms.append(
                ScoreTerm(
                    str(metric),
                    weight,
                    None if cap is None else _number(cap, f"{where}: cap_mm", positive=True),
                )
            )
        if sum(t.weight for t in terms) <= 0:
            raise ValueError(f"{source}: the term weights must not all be 0.")
        raw_weights = data.get("label_weights", {})
        if not isinstance(raw_weights, Mapping):
            raise ValueError(f"{source}: label_weights must be an object of label to weight.")
        label_weights = {
            str(k): _number(v, f"{source}: label_weights[{k!r}]") for k, v in raw_weights.items()
        }
        name = data.get("name", Path(source).name)
        if not isinstance(name, str):
            raise ValueError(f"{source}: name must be a string; got {name!r}.")
        return cls(tuple(terms), label_weights, name, source)

    def check_labels(self, label_keys: Sequence[str]) -> None:
        """Refuse label weights for labels that are not evaluated.

        Raises:
            ValueError: Naming the unknown label.
        """
        unknown = sorted(set(self.label_weights) - set(label_keys))
        if unknown:
            raise ValueError(
                f"{self.source}: label_weights names label(s) {unknown} that are not evaluated; "
                f"evaluated: {list(label_keys)}."
            )

    def label_scores(self, values: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        """Per-label scores from per-case values (steps 1-3 of the module docstring).

        Args:
            values: Metric name to ``(cases, labels)`` values.

        Returns:
            ``(labels,)`` scores.

        Examples:
            >>> spec = ScoreSpec.from_dict({"schema_version": 1, "terms": [
            ...     {"metric": "dice", "weight": 0.5},
            ...     {"metric": "hd95", "weight": 0.5, "cap_mm": 20}]})
            >>> spec.label_scores({"dice": np.array([[0.8], [0.6]]),
            ...                    "hd95": np.array([[10.0], [np.nan]])}).tolist()
            [0.6]
        """
        total: NDArray[np.float64] | None = None
        for term in self.terms:
            transformed = term.transform(np.asarray(values[term.metric], dtype=np.float64))
            if transformed.ndim == 1:
                transformed = transformed[None, :]
            counted = (~np.isnan(transformed)).sum(axis=0)
            with np.errstate(invalid="ignore"):
                means = np.where(
                    counted > 0, np.nansum(transformed, axis=0) / np.maximum(counted, 1), np.nan
                )
            part = term.weight * means
            total = part if total is None else total + part
        assert total is not None  # terms is never empty
        return np.asarray(total, dtype=np.float64)

    def combine(self, label_scores: NDArray[np.float64], label_keys: Sequence[str]) -> float:
        """Weighted mean of the defined label scores (step 4); NaN if none is defined.

        Examples:
            >>> spec = ScoreSpec.from_dict({"schema_version": 1, "label_weights": {"2": 3},
            ...     "terms": [{"metric": "dice", "weight": 1}]})
            >>> round(spec.combine(np.array([0.2, 0.6, np.nan]), ["1", "2", "3"]), 6)
            0.5
        """
        weights = np.array([self.label_weights.get(k, 1.0) for k in label_keys])
        scores = np.asarray(label_scores, dtype=np.float64)
        defined = ~np.isnan(scores) & (weights > 0)
        if not defined.any():
            return math.nan
        return float((scores[defined] * weights[defined]).sum() / weights[defined].sum())

    def term_values(self, values: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        """Per case, label and term, the transformed value (step 1; NaN stays NaN).

        Args:
            values: Metric name to ``(cases, labels)`` values.

        Returns:
            ``(cases, labels, terms)`` values, whose means over cases (NaN left out) are the
            term means of :meth:`label_scores`.

        Examples:
            >>> spec = ScoreSpec.from_dict({"schema_version": 1, "terms": [
            ...     {"metric": "dice", "weight": 0.5},
            ...     {"metric": "hd95", "weight": 0.5, "cap_mm": 20}]})
            >>> spec.term_values({"dice": np.array([[0.8]]), "hd95": np.array([[5.0]])}).tolist()
            [[[0.8, 0.75]]]
        """
        return np.stack(
            [t.transform(np.asarray(values[t.metric], dtype=np.float64)) for t in self.terms],
            axis=-1,
        )

    def scores_from_means(
        self, term_means: NDArray[np.float64], label_keys: Sequence[str]
    ) -> NDArray[np.float64]:
        """Scores from per-label term means (steps 3 and 4), over any leading axes.

        ``spec.scores_from_means(means, keys)`` equals ``spec.combine(spec.label_scores(v),
        keys)`` where ``means`` are the term means of ``v``; the leading axes let one call
        score every bootstrap resample (``nnunet-ext compare``).

        Args:
            term_means: ``(..., labels, terms)`` means (NaN: no defined case).
            label_keys: The labels' keys, for ``label_weights``.

        Returns:
            ``(...)`` scores; NaN where no label score is defined.

        Examples:
            >>> spec = ScoreSpec.from_dict({"schema_version": 1, "label_weights": {"2": 3},
            ...     "terms": [{"metric": "dice", "weight": 1}]})
            >>> spec.scores_from_means(np.array([[[0.2], [0.6]], [[np.nan], [0.6]]]), ["1", "2"])
            array([0.5, 0.6])
        """
        means = np.asarray(term_means, dtype=np.float64)
        label_scores = (means * np.array([t.weight for t in self.terms])).sum(axis=-1)
        weights = np.array([self.label_weights.get(k, 1.0) for k in label_keys])
        defined = ~np.isnan(label_scores) & (weights > 0)
        total = np.where(defined, label_scores * weights, 0.0).sum(axis=-1)
        weight_sum = np.where(defined, weights, 0.0).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scores: NDArray[np.float64] = np.where(
                weight_sum > 0, total / np.maximum(weight_sum, 1e-300), np.nan
            )
        return scores

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (as read), for reports."""
        terms = []
        for t in self.terms:
            term: dict[str, Any] = {"metric": t.metric, "weight": t.weight}
            if t.cap_mm is not None:
                term["cap_mm"] = t.cap_mm
            terms.append(term)
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "terms": terms,
            "label_weights": dict(self.label_weights),
        }


def load_score(path: str | os.PathLike[str]) -> ScoreSpec:
    """Read and validate a score file.

    Raises:
        FileNotFoundError: If it does not exist.
        ValueError: If it is not strict JSON or not a valid score (one line).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"score file not found: {file}")
    return ScoreSpec.from_dict(load_json(file), source=str(file))
