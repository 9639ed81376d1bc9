"""Empty-case conventions of every metric, as data: one table, no scattered ifs.

A case is in one of three empty situations for a label: both masks empty, only the reference
empty (false positives only), or only the prediction empty (a miss). For each named convention
and metric the table gives the value used there:

* a number (e.g. BraTS' 374 mm for a one-sided empty HD95),
* ``NAN``: undefined, left out of the means and counted as undefined,
* :data:`DIAGONAL`: the image diagonal in mm (``sqrt(sum((shape * spacing) ** 2))``),
* :data:`COMPUTED`: the metric's own formula, which is defined there (Dice 0 for a miss,
  volume difference, the relative volume error of a miss, -1).

``"nan"`` is the default and leaves Dice/IoU to ``--empty``; the others fix Dice too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = [
    "BOTH_EMPTY",
    "COMPUTED",
    "CONVENTIONS",
    "DIAGONAL",
    "NAN",
    "PREDICTION_EMPTY",
    "REFERENCE_EMPTY",
    "SITUATIONS",
    "convention_value",
    "get_convention",
]

#: The three empty situations, in table column order.
BOTH_EMPTY: Final = "both_empty"
REFERENCE_EMPTY: Final = "reference_empty"
PREDICTION_EMPTY: Final = "prediction_empty"
SITUATIONS: tuple[str, ...] = (BOTH_EMPTY, REFERENCE_EMPTY, PREDICTION_EMPTY)

#: Table markers (see the module docstring).
COMPUTED: Final = "computed"
DIAGONAL: Final = "diagonal"
NAN: Final = math.nan

Entry = float | str
Row = tuple[Entry, Entry, Entry]

_DISTANCES = ("hd", "hd95", "hd95_pooled", "assd")


def _rows(distance: Row, overlap: Row, nsd: Row, relative: Row) -> dict[str, Row]:
    rows = {name: distance for name in _DISTANCES}
    rows.update(
        dice=overlap,
        iou=overlap,
        nsd=nsd,
        volume_diff_ml=(COMPUTED, COMPUTED, COMPUTED),
        volume_diff_rel=relative,
    )
    return rows


#: Convention name -> metric -> (both empty, reference empty, prediction empty).
CONVENTIONS: Mapping[str, Mapping[str, Row]] = {
    # Distances undefined whenever a side is empty (MONAI gives inf or NaN there, MedPy raises);
    # NSD as MONAI (NaN both empty, 0 one side); Dice/IoU as --empty says (nnU-Net: NaN, 0).
    "nan": _rows(
        distance=(NAN, NAN, NAN),
        overlap=(COMPUTED, COMPUTED, COMPUTED),
        nsd=(NAN, 0.0, 0.0),
        relative=(NAN, NAN, COMPUTED),
    ),
    # BraTS (2021-2025 evaluation): both empty Dice 1, HD95 0; one side empty Dice 0, HD95 374.
    "brats": _rows(
        distance=(0.0, 374.0, 374.0),
        overlap=(1.0, 0.0, 0.0),
        nsd=(1.0, 0.0, 0.0),
        relative=(0.0, NAN, COMPUTED),
    ),
    # The largest distance the image allows: its diagonal in mm, for a one-sided empty case.
    "max-distance": _rows(
        distance=(0.0, DIAGONAL, DIAGONAL),
        overlap=(1.0, 0.0, 0.0),
        nsd=(1.0, 0.0, 0.0),
        relative=(0.0, NAN, COMPUTED),
    ),
}


def get_convention(name: str) -> Mapping[str, Row]:
    """Return the table rows of convention ``name``.

    Raises:
        ValueError: For an unknown name (one line listing the known ones).

    Examples:
        >>> get_convention("brats")["hd95"]
        (0.0, 374.0, 374.0)
        >>> get_convention("kits")
        Traceback (most recent call last):
        ...
        ValueError: convention: unknown convention 'kits'; known: nan, brats, max-distance.
    """
    if name not in CONVENTIONS:
        raise ValueError(
            f"convention: unknown convention {name!r}; known: {', '.join(CONVENTIONS)}."
        )
    return CONVENTIONS[name]


def convention_value(
    convention: str,
    metric: str,
    situation: str,
    *,
    shape: Sequence[int] = (),
    spacing: Sequence[float] = (),
) -> float | None:
    """The value of ``metric`` in an empty ``situation``; ``None`` when it is computed.

    Args:
        convention: A name in :data:`CONVENTIONS`.
        metric: A metric name (a key of the convention's rows).
        situation: One of :data:`SITUATIONS`.
        shape: Image shape, for :data:`DIAGONAL`.
        spacing: Voxel size per array axis in mm, for :data:`DIAGONAL`.

    Returns:
        The value, or ``None`` for :data:`COMPUTED`.

    Examples:
        >>> convention_value("brats", "hd95", "reference_empty")
        374.0
        >>> convention_value("max-distance", "hd", "prediction_empty",
        ...                  shape=(3, 4), spacing=(1.0, 1.0))
        5.0
        >>> convention_value("nan", "dice", "both_empty") is None
        True
    """
    rows = get_convention(convention)
    if metric not in rows:
        raise ValueError(f"convention {convention!r} has no entry for metric {metric!r}.")
    if situation not in SITUATIONS:
        raise ValueError(f"situation must be one of {SITUATIONS}; got {situation!r}.")
    entry = rows[metric][SITUATIONS.index(situation)]
    if entry == COMPUTED:
        return None
    if entry == DIAGONAL:
        return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))
    return float(entry)
