"""Read JSON files strictly, with one clear error line when one is missing or malformed.

The reading half of :func:`~nnunet_ext.io.atomic.write_json`: ``NaN`` and ``Infinity`` are not
JSON, so they are refused here as they are never written there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import describe

__all__ = ["load_json", "load_json_object"]


def load_json(path: str | os.PathLike[str]) -> Any:
    """Load a JSON file with one clear error line when it is missing or malformed.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: If it is not valid UTF-8 JSON (``NaN`` and ``Infinity`` included: not JSON).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"file not found: {file}")

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(file.read_text(encoding="utf-8"), parse_constant=_no_constants)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as err:
        found = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise InputError(
            file,
            "valid UTF-8 JSON",
            f"a parse error ({found})",
            fix="Fix the file (a JSON linter shows where) or write it again.",
        ) from err


def load_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a JSON file that must hold an object (a ``{...}``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: If it is not valid JSON or not an object.
    """
    data = load_json(path)
    if not isinstance(data, dict):
        raise InputError(path, "a JSON object ({...}) at the top level", describe(data))
    return data
