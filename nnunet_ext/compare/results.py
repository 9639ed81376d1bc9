"""What :func:`~nnunet_ext.compare.compare_evaluations` returns, its JSON form and its reader.

``compare --json`` writes :meth:`Comparison.to_json` (strict JSON, ``schema_version`` 1; the
format page is ``docs/reference/formats/comparison.md``); :func:`load_comparison` reads it back,
refusing unknown or missing keys with one line naming the file and the key path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnunet_ext.compare.stats import VERDICTS
from nnunet_ext.io import load_json_object
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import (
    check_keys,
    describe,
    expect_bool,
    expect_int,
    expect_mapping,
    expect_number_or_null,
    expect_str,
    invalid_key,
    key_path,
)

__all__ = ["SCHEMA_VERSION", "Comparison", "Difference", "Standing", "load_comparison"]

#: Version of the comparison's JSON layout.
SCHEMA_VERSION = 1
#: How the interval is made, as the report states it.
METHOD = (
    "percentile interval of the difference of the means over paired bootstrap resamples of the "
    "cases (one draw of cases for every version, label and metric)"
)
#: How the ranks are made, as the report states it.
RANKING = (
    "per case, label and metric the versions are ranked (1 best, ties share the mean rank, an "
    "undefined value ranks last); each version's mean rank over the cases; the overall row "
    "averages those over every label and metric; probability_first: share of the resamples in "
    "which the version has the best mean rank"
)
_FIX = "Write it again with `nnunet-ext compare --json`."


@dataclass(frozen=True)
class Difference:
    """Version B against version A on one label and metric, or on the score.

    Attributes:
        a: Name of version A (the first input).
        b: Name of version B.
        label: The label's key (``"1"``, ``"(1, 2)"``); ``None`` for the score.
        name: The label's name, or the score's.
        metric: The compared column (``Dice``, ``HD95``, ``|VolumeDiff_ml|``) or ``score``.
        higher_is_better: The metric's direction.
        mean_a: A's mean over the compared cases (NaN values left out, as ``evaluate``).
        mean_b: B's mean.
        difference: ``mean_b - mean_a``.
        interval: Its bootstrap percentile interval.
        num_cases: Cases where both are defined (those ``b_better`` counts over).
        b_better: Fraction of those cases where B is better.
        a_better: Fraction where A is better (the rest are ties).
        verdict: One of :data:`~nnunet_ext.compare.stats.VERDICTS`.
    """

    a: str
    b: str
    label: str | None
    name: str
    metric: str
    higher_is_better: bool
    mean_a: float
    mean_b: float
    difference: float
    interval: tuple[float, float]
    num_cases: int
    b_better: float
    a_better: float
    verdict: str


@dataclass(frozen=True)
class Standing:
    """The versions' ranks on one label and metric, on the score, or over everything.

    Attributes:
        label: The label's key; ``None`` for the score and the overall row.
        name: The label's name, the score's, or ``"overall"``.
        metric: The compared column, ``score``, or ``all``.
        mean_rank: Per version, its mean rank over the cases (1 best).
        rank: Per version, its place by mean rank (ties share the mean place).
        probability_first: Per version, the share of resamples where it ranks first.
    """

    label: str | None
    name: str
    metric: str
    mean_rank: tuple[float, ...]
    rank: tuple[float, ...]
    probability_first: tuple[float, ...]


@dataclass(frozen=True)
class Comparison:
    """The comparison of two or more evaluations of the same cases.

    Attributes:
        versions: The versions' names, in input order (the first is A).
        paths: Their evaluation files.
        cases: The compared cases.
        left_out: Per version, its cases that not every file has (``common_cases`` only).
        conventions: The conventions all evaluations share.
        samples: Bootstrap resamples of the cases.
        seed: Seed of the resampling.
        confidence: The intervals' coverage (0.95).
        differences: Each later version against the first, per label and metric, then score.
        ranking: With three or more versions, the ranks per label and metric, score, overall.
    """

    versions: tuple[str, ...]
    paths: tuple[str, ...]
    cases: tuple[str, ...]
    left_out: dict[str, list[str]]
    conventions: dict[str, Any]
    samples: int
    seed: int
    confidence: float
    differences: tuple[Difference, ...]
    ranking: tuple[Standing, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON form (NaN stays float; write with ``io.write_json``: ``null``)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "versions": [
                {"name": n, "path": p} for n, p in zip(self.versions, self.paths, strict=True)
            ],
            "cases": {"compared": list(self.cases), "left_out": dict(self.left_out)},
            "conventions": dict(self.conventions),
            "bootstrap": {
                "samples": self.samples,
                "seed": self.seed,
                "confidence": self.confidence,
                "method": METHOD,
            },
            "differences": [{**vars(d), "interval": list(d.interval)} for d in self.differences],
            "ranking": {
                "method": RANKING,
                "standings": [
                    {
                        **vars(s),
                        **{k: list(getattr(s, k)) for k in _STANDING_LISTS},
                    }
                    for s in self.ranking
                ],
            },
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str | os.PathLike[str]) -> Comparison:
        """Validate the JSON form and rebuild the comparison.

        Raises:
            InputError: For the first key that is unknown, missing or of the wrong kind.

        Examples:
            >>> Comparison.from_json({"schema_version": 1, "version": []}, source="c.json")
            Traceback (most recent call last):
            ...
            nnunet_ext.io.errors.InputError: c.json: version must be absent (allowed keys: ...
        """
        data = expect_mapping(data, source=source, where=None)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise invalid_key(source, data, "schema_version", str(SCHEMA_VERSION), fix=_FIX)
        check_keys(data, source=source, where=None, allowed=_TOP, required=_TOP)
        versions = _list(data["versions"], source, "versions")
        names, paths = [], []
        for i, entry in enumerate(versions):
            where = key_path("versions", i)
            item = _object(entry, source, where, ("name", "path"))
            names.append(expect_str(item["name"], source=source, where=f"{where}.name"))
            paths.append(expect_str(item["path"], source=source, where=f"{where}.path"))
        cases = _object(data["cases"], source, "cases", ("compared", "left_out"))
        left_out = expect_mapping(cases["left_out"], source=source, where="cases.left_out")
        check_keys(left_out, source=source, where="cases.left_out", allowed=names)
        boot = _object(data["bootstrap"], source, "bootstrap", _BOOTSTRAP)
        conventions = _object(data["conventions"], source, "conventions", _CONVENTIONS)
        ranking = _object(data["ranking"], source, "ranking", ("method", "standings"))
        expect_str(ranking["method"], source=source, where="ranking.method")
        expect_str(boot["method"], source=source, where="bootstrap.method")
        return cls(
            versions=tuple(names),
            paths=tuple(paths),
            cases=tuple(_strings(cases["compared"], source, "cases.compared")),
            left_out={
                k: _strings(v, source, key_path("cases.left_out", k)) for k, v in left_out.items()
            },
            conventions=_conventions(conventions, source),
            samples=expect_int(boot["samples"], source=source, where="bootstrap.samples"),
            seed=expect_int(boot["seed"], source=source, where="bootstrap.seed", minimum=0),
            confidence=_number(boot["confidence"], source, "bootstrap.confidence"),
            differences=tuple(
                _difference(d, source, key_path("differences", i), names)
                for i, d in enumerate(_list(data["differences"], source, "differences"))
            ),
            ranking=tuple(
                _standing(s, source, key_path("ranking.standings", i), len(names))
                for i, s in enumerate(_list(ranking["standings"], source, "ranking.standings"))
            ),
        )


_TOP = ("schema_version", "versions", "cases", "conventions", "bootstrap", "differences", "ranking")
_BOOTSTRAP = ("samples", "seed", "confidence", "method")
_CONVENTIONS = ("empty", "convention", "ignore_label", "nsd_tolerance_mm")
_DIFFERENCE = tuple(Difference.__dataclass_fields__)
_STANDING = tuple(Standing.__dataclass_fields__)
_STANDING_LISTS = ("mean_rank", "rank", "probability_first")


def load_comparison(path: str | os.PathLike[str]) -> Comparison:
    """Read a comparison written by ``nnunet-ext compare --json``.

    Raises:
        FileNotFoundError: If the file does not exist.
        InputError: If it is not strict JSON or not a comparison (one line).
    """
    return Comparison.from_json(load_json_object(path), source=Path(path))


def _object(
    value: Any, source: str | os.PathLike[str], where: str, keys: Sequence[str]
) -> Mapping[str, Any]:
    entry = expect_mapping(value, source=source, where=where)
    check_keys(entry, source=source, where=where, allowed=keys, required=keys)
    return entry


def _list(value: Any, source: str | os.PathLike[str], where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(source, "a list", describe(value), key=where, fix=_FIX)
    return value


def _strings(value: Any, source: str | os.PathLike[str], where: str) -> list[str]:
    items = _list(value, source, where)
    return [expect_str(v, source=source, where=key_path(where, i)) for i, v in enumerate(items)]


def _number(value: Any, source: str | os.PathLike[str], where: str) -> float:
    return expect_number_or_null(value, source=source, where=where, fix=_FIX)


def _numbers(value: Any, source: str | os.PathLike[str], where: str, n: int) -> tuple[float, ...]:
    items = _list(value, source, where)
    if len(items) != n:
        raise InputError(source, f"a list of {n} numbers", f"{len(items)} items", key=where)
    return tuple(_number(v, source, key_path(where, i)) for i, v in enumerate(items))


def _interval(value: Any, source: str | os.PathLike[str], where: str) -> tuple[float, float]:
    low, high = _numbers(value, source, where, 2)
    return low, high


def _conventions(entry: Mapping[str, Any], source: str | os.PathLike[str]) -> dict[str, Any]:
    for key in ("empty", "convention"):
        expect_str(entry[key], source=source, where=f"conventions.{key}")
    ignore = entry["ignore_label"]
    if ignore is not None:
        expect_int(ignore, source=source, where="conventions.ignore_label", minimum=0)
    where = "conventions.nsd_tolerance_mm"
    tolerances = expect_mapping(entry["nsd_tolerance_mm"], source=source, where=where)
    for key, value in tolerances.items():
        _number(value, source, key_path(where, str(key)))
    return {**entry, "nsd_tolerance_mm": dict(tolerances)}


def _difference(
    value: Any, source: str | os.PathLike[str], where: str, names: Sequence[str]
) -> Difference:
    entry = _object(value, source, where, _DIFFERENCE)
    for side in ("a", "b"):
        if entry[side] not in names:
            raise InputError(
                source,
                f"a version name ({', '.join(names)})",
                describe(entry[side]),
                key=f"{where}.{side}",
            )
    if entry["verdict"] not in VERDICTS:
        raise InputError(
            source,
            f"one of {', '.join(VERDICTS)}",
            describe(entry["verdict"]),
            key=f"{where}.verdict",
        )
    label = entry["label"]
    return Difference(
        a=entry["a"],
        b=entry["b"],
        label=None if label is None else expect_str(label, source=source, where=f"{where}.label"),
        name=expect_str(entry["name"], source=source, where=f"{where}.name"),
        metric=expect_str(entry["metric"], source=source, where=f"{where}.metric"),
        higher_is_better=expect_bool(
            entry["higher_is_better"], source=source, where=f"{where}.higher_is_better"
        ),
        mean_a=_number(entry["mean_a"], source, f"{where}.mean_a"),
        mean_b=_number(entry["mean_b"], source, f"{where}.mean_b"),
        difference=_number(entry["difference"], source, f"{where}.difference"),
        interval=_interval(entry["interval"], source, f"{where}.interval"),
        num_cases=expect_int(
            entry["num_cases"], source=source, where=f"{where}.num_cases", minimum=0
        ),
        b_better=_number(entry["b_better"], source, f"{where}.b_better"),
        a_better=_number(entry["a_better"], source, f"{where}.a_better"),
        verdict=entry["verdict"],
    )


def _standing(value: Any, source: str | os.PathLike[str], where: str, n: int) -> Standing:
    entry = _object(value, source, where, _STANDING)
    label = entry["label"]
    return Standing(
        label=None if label is None else expect_str(label, source=source, where=f"{where}.label"),
        name=expect_str(entry["name"], source=source, where=f"{where}.name"),
        metric=expect_str(entry["metric"], source=source, where=f"{where}.metric"),
        mean_rank=_numbers(entry["mean_rank"], source, f"{where}.mean_rank", n),
        rank=_numbers(entry["rank"], source, f"{where}.rank", n),
        probability_first=_numbers(
            entry["probability_first"], source, f"{where}.probability_first", n
        ),
    )
