"""The one error type for bad input: which file, where in it, what was expected, what was found.

Every ``nnunet_ext.io`` owner of an input kind raises :class:`InputError` when it refuses a file,
and the command-line layer prints it as one ``prog: error: ...`` line with exit code 1.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError"]


class InputError(ValueError):
    """An input file (or option value) that cannot be used as it is.

    Args:
        source: The file (or option, e.g. ``"--labels"``) the problem is in.
        expected: What was expected, e.g. ``"a complete gzip stream"``.
        found: What was found instead, e.g. ``"the file ends after 1200 of 4000 bytes"``.
        key: Where in the file, as a key path (``members[1].label_weights."3"``), or ``None``.
        fix: What the user can do about it, or ``None``.

    Examples:
        >>> err = InputError("spec.json", "a number", "'x'", key='members[1].weight', fix=None)
        >>> str(err)
        "spec.json: members[1].weight must be a number; got 'x'."
    """

    def __init__(
        self,
        source: str | Path,
        expected: str,
        found: str,
        *,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.source = str(source)
        self.key = key
        self.expected = expected
        self.found = found
        self.fix = fix
        where = f"{self.source}: {key}" if key else self.source
        message = f"{where} must be {expected}; got {found}."
        if fix:
            message += f" {fix}"
        super().__init__(message)
