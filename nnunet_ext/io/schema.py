"""A small strict-schema toolkit: key paths, allowed/required keys, typed values.

Every JSON we read (``dataset.json``, ``plans.json``, the postprocessing plan, the ensemble spec)
is checked with these helpers, so that every refusal is one :class:`InputError` with the file,
the key path (``members[1].label_weights."3"``), what was expected and what was found.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection, Mapping
from typing import Any

from nnunet_ext.io.errors import InputError

__all__ = [
    "check_keys",
    "describe",
    "expect_bool",
    "expect_int",
    "expect_mapping",
    "expect_number",
    "expect_number_or_null",
    "expect_str",
    "invalid_key",
    "key_path",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def key_path(parent: str | None, child: str | int) -> str:
    """Extend a key path by one step: ``.name``, ``[index]`` or ``."3"`` for odd names.

    Examples:
        >>> key_path(key_path(key_path(None, "members"), 1), "label_weights")
        'members[1].label_weights'
        >>> key_path("members[1].label_weights", "3")
        'members[1].label_weights."3"'
    """
    if isinstance(child, int):
        step = f"[{child}]"
        return f"{parent}{step}" if parent else step
    name = child if _IDENTIFIER.match(child) else '"' + child.replace('"', '\\"') + '"'
    return f"{parent}.{name}" if parent else name


def describe(value: Any) -> str:
    """Name a found value for an error message: its JSON type and a short repr.

    Examples:
        >>> describe("x"), describe([1, 2]), describe(None)
        ("the string 'x'", 'a list', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def invalid_key(
    source: str | os.PathLike[str],
    data: Mapping[str, Any],
    key: str,
    expected: str,
    *,
    fix: str | None = None,
) -> InputError:
    """The :class:`InputError` for ``data[key]`` not being ``expected`` (absent: "got nothing").

    Examples:
        >>> str(invalid_key("plans.json", {}, "image_reader_writer", "a reader name"))
        'plans.json: image_reader_writer must be a reader name; got nothing.'
        >>> str(invalid_key("plan.json", {"schema_version": 7}, "schema_version", "1"))
        'plan.json: schema_version must be 1; got the number 7.'
    """
    found = describe(data[key]) if key in data else "nothing"
    return InputError(source, expected, found, key=key, fix=fix)


def check_keys(
    obj: Mapping[str, Any],
    *,
    source: str | os.PathLike[str],
    where: str | None,
    allowed: Collection[str],
    required: Collection[str] = (),
) -> None:
    """Refuse unknown keys (listing the allowed ones) and missing required keys.

    Args:
        obj: The mapping to check.
        source: The file, for the message.
        where: The key path of ``obj`` (``None`` for the top level).
        allowed: Every key ``obj`` may have (the required ones included).
        required: Keys ``obj`` must have.

    Raises:
        InputError: For the first unknown or missing key.

    Examples:
        >>> check_keys({"a": 1, "b": 2}, source="x.json", where="m[0]", allowed=["a"])
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: x.json: m[0].b must be absent (allowed keys: a); ...
    """
    for name in obj:
        if name not in allowed:
            raise InputError(
                source,
                f"absent (allowed keys: {', '.join(sorted(allowed)) or 'none'})",
                "an unknown key",
                key=key_path(where, str(name)),
                fix="Remove it or correct its spelling.",
            )
    for name in required:
        if name not in obj:
            raise InputError(
                source,
                "present",
                "nothing",
                key=key_path(where, name),
                fix=f"Add the required key {name!r}.",
            )


def expect_mapping(
    value: Any, *, source: str | os.PathLike[str], where: str | None
) -> Mapping[str, Any]:
    """Return ``value`` if it is a JSON object, else raise :class:`InputError`."""
    if not isinstance(value, Mapping):
        raise InputError(source, "a JSON object", describe(value), key=where)
    return value


def expect_str(value: Any, *, source: str | os.PathLike[str], where: str) -> str:
    """Return ``value`` if it is a string, else raise :class:`InputError`."""
    if not isinstance(value, str):
        raise InputError(source, "a string", describe(value), key=where)
    return value


def expect_bool(value: Any, *, source: str | os.PathLike[str], where: str) -> bool:
    """Return ``value`` if it is a boolean, else raise :class:`InputError`."""
    if not isinstance(value, bool):
        raise InputError(source, "true or false", describe(value), key=where)
    return value


def expect_int(
    value: Any, *, source: str | os.PathLike[str], where: str, minimum: int | None = None
) -> int:
    """Return ``value`` if it is an integer (not a boolean) at least ``minimum``.

    Examples:
        >>> expect_int(3, source="d.json", where="labels.a")
        3
        >>> expect_int("x", source="d.json", where="labels.a")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: d.json: labels.a must be an integer; got the string 'x'.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(source, "an integer", describe(value), key=where)
    if minimum is not None and value < minimum:
        raise InputError(source, f"an integer >= {minimum}", describe(value), key=where)
    return value


def expect_number(
    value: Any, *, source: str | os.PathLike[str], where: str, minimum: float | None = None
) -> float:
    """Return ``value`` as a float if it is a finite number (not a boolean) at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(source, "a finite number", describe(value), key=where)
    if minimum is not None and value < minimum:
        raise InputError(source, f"a number >= {minimum:g}", describe(value), key=where)
    return float(value)


def expect_number_or_null(
    value: Any, *, source: str | os.PathLike[str], where: str, fix: str | None = None
) -> float:
    """Return a finite number as a float and ``null`` as NaN (how strict JSON writes NaN).

    Examples:
        >>> expect_number_or_null(None, source="e.json", where="mean.Dice")
        nan
        >>> expect_number_or_null("x", source="e.json", where="mean.Dice")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: e.json: mean.Dice must be a number or null; got ...
    """
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(source, "a number or null", describe(value), key=where, fix=fix)
    return float(value)
