"""Surfel NSD: DeepMind's surface Dice on the corner grid, with surface elements weighted by area.

The definition of ``surface-distance`` 0.1 (``compute_surface_distances`` and
``compute_surface_dice_at_tolerance``), the NSD that KiTS23, FLARE and TotalSegmentator rank on:

1. The masks are cropped to the bounding box of their union and looked at on the *corner grid*:
   one point per voxel corner, each with the 8-bit code of the 2x2x2 voxels around it (4-bit,
   2x2 in 2D). A corner whose code is neither 0 nor all-ones is a surface element ("surfel").
2. Each surfel has the area (3D; length in 2D) of the marching-cubes surface through its
   neighbourhood, in mm^2 for the spacing: :func:`neighbour_code_areas`.
3. Distances between the two surfel sets are exact Euclidean distances in mm on the corner grid.
4. ``NSD = (area of reference surfels within the tolerance of the predicted surface + area of
   predicted surfels within the tolerance of the reference surface) / (both total areas)``.

The area table is derived here from the definition of marching cubes, not copied: the corners
inside the surface are the smaller of the inside set and its complement (the classic table's
complement symmetry; a face with two diagonal inside corners separates them), each
edge-connected group of them is cut off by the polygon through the midpoints of the cube edges
that leave the group, and each polygon is triangulated as a fan. Planar polygons have one area
whatever the fan; the non-planar ones (three corners in an L, four in a zig-zag) are fanned from
the vertex that gives the largest unit-cube area, which is the triangulation of the classic case
table. A triangle's area vector ``a`` scales to ``(a0 s1 s2, a1 s0 s2, a2 s0 s1)`` for voxel
spacing ``s``. ``tests/evaluate/test_surfels.py`` compares the table with ``surface-distance``'s
at random spacings, code by code.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nnunet_ext.evaluate.surface import crop_box, surface_point_distances

__all__ = ["SurfelDistances", "neighbour_code_areas", "surfel_distances", "surfel_surface_dice"]


def _corners(ndim: int) -> list[tuple[int, ...]]:
    return [tuple(int(b) for b in np.binary_repr(c, ndim)) for c in range(2**ndim)]


def _code_bit(corner: int, ndim: int) -> int:
    """The code bit of a corner (index ``sum(o_k 2^(ndim-1-k))``): the first corner is the top."""
    return int(1 << (2**ndim - 1 - corner))


def _adjacent(a: Sequence[int], b: Sequence[int]) -> bool:
    return bool(sum(x != y for x, y in zip(a, b, strict=True)) == 1)


def _groups(inside: set[int], corners: list[tuple[int, ...]]) -> list[set[int]]:
    """Edge-connected groups of the inside corners."""
    left, groups = set(inside), []
    while left:
        stack = [left.pop()]
        group = set(stack)
        while stack:
            a = stack.pop()
            near = {b for b in left if _adjacent(corners[a], corners[b])}
            left -= near
            group |= near
            stack.extend(near)
        groups.append(group)
    return groups


def _cut_polygon(group: set[int], corners: list[tuple[int, ...]]) -> list[NDArray[np.float64]]:
    """The cycle of cut-edge midpoints around ``group`` (two per cube face it touches)."""
    ndim = len(corners[0])
    cut = [
        (a, b)
        for a, b in itertools.combinations(range(len(corners)), 2)
        if _adjacent(corners[a], corners[b]) and ((a in group) != (b in group))
    ]
    if ndim == 2:  # a segment between the two cut edges
        return [(np.add(corners[a], corners[b]) / 2.0) for a, b in cut]
    links: dict[tuple[int, int], list[tuple[int, int]]] = {e: [] for e in cut}
    for axis, value in itertools.product(range(ndim), (0, 1)):
        on_face = [e for e in cut if corners[e[0]][axis] == corners[e[1]][axis] == value]
        if len(on_face) == 2:
            links[on_face[0]].append(on_face[1])
            links[on_face[1]].append(on_face[0])
    order, previous = [cut[0]], None
    while len(order) < len(cut):
        step = next(e for e in links[order[-1]] if e != previous)
        previous = order[-1]
        order.append(step)
    return [(np.add(corners[a], corners[b]) / 2.0) for a, b in order]


def _fan(polygon: list[NDArray[np.float64]], start: int) -> list[NDArray[np.float64]]:
    p = polygon[start:] + polygon[:start]
    return [0.5 * np.cross(p[i] - p[0], p[i + 1] - p[0]) for i in range(1, len(p) - 1)]


@functools.lru_cache(maxsize=2)
def _code_elements(ndim: int) -> tuple[NDArray[np.float64], ...]:
    """Per neighbour code, the area vectors (3D) or segment vectors (2D) of its surface."""
    corners = _corners(ndim)
    out = []
    for code in range(2 ** (2**ndim)):
        inside = {c for c in range(len(corners)) if code & _code_bit(c, ndim)}
        if len(inside) > len(corners) // 2:
            inside = set(range(len(corners))) - inside
        vectors: list[NDArray[np.float64]] = []
        for group in _groups(inside, corners):
            polygon = _cut_polygon(group, corners)
            if ndim == 2:
                vectors.append(polygon[1] - polygon[0])
                continue
            fans = [_fan(polygon, s) for s in range(len(polygon))]
            vectors.extend(max(fans, key=lambda f: round(sum(np.linalg.norm(v) for v in f), 9)))
        out.append(np.asarray(vectors, dtype=np.float64).reshape(-1, ndim))
    return tuple(out)


@functools.lru_cache(maxsize=32)
def neighbour_code_areas(spacing: tuple[float, ...]) -> NDArray[np.float64]:
    """Surface area (mm^2; contour length in mm in 2D) of every neighbour code.

    Args:
        spacing: Voxel size per array axis, mm (2 or 3 values).

    Returns:
        ``(256,)`` (3D) or ``(16,)`` (2D) float64 areas, indexed by the neighbour code.

    Examples:
        >>> areas = neighbour_code_areas((1.0, 1.0, 1.0))
        >>> round(float(areas[1]), 6), round(float(areas[0b11110000]), 6), float(areas[255])
        (0.216506, 1.0, 0.0)
        >>> neighbour_code_areas((1.0, 2.0))[0b1100].tolist()
        2.0
    """
    s = np.asarray(spacing, dtype=np.float64)
    if s.size == 3:
        scale = np.array([s[1] * s[2], s[0] * s[2], s[0] * s[1]])
    elif s.size == 2:
        scale = s
    else:
        raise ValueError(f"spacing must hold 2 or 3 values; got {tuple(spacing)}.")
    return np.array(
        [np.linalg.norm(v * scale, axis=1).sum() for v in _code_elements(s.size)],
        dtype=np.float64,
    )


def _codes(mask: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Neighbour code of every corner of ``mask``'s voxels (shape ``mask.shape + 1``)."""
    padded = np.pad(mask, 1).astype(np.intp)
    out_shape = tuple(n + 1 for n in mask.shape)
    codes = np.zeros(out_shape, dtype=np.intp)
    for corner, offset in enumerate(_corners(mask.ndim)):
        view = tuple(slice(o, o + n) for o, n in zip(offset, out_shape, strict=True))
        codes += padded[view] * _code_bit(corner, mask.ndim)
    return codes


class SurfelDistances:
    """Surfel distances and areas of a reference/prediction pair (as ``surface-distance``'s dict).

    Attributes:
        reference_to_prediction: Distance (mm) of each reference surfel to the predicted surface
            (``inf`` when the prediction is empty).
        prediction_to_reference: Likewise from each predicted surfel.
        reference_areas: Area (mm^2) of each reference surfel.
        prediction_areas: Area of each predicted surfel.
    """

    def __init__(
        self,
        reference_to_prediction: NDArray[np.float64],
        prediction_to_reference: NDArray[np.float64],
        reference_areas: NDArray[np.float64],
        prediction_areas: NDArray[np.float64],
    ) -> None:
        self.reference_to_prediction = reference_to_prediction
        self.prediction_to_reference = prediction_to_reference
        self.reference_areas = reference_areas
        self.prediction_areas = prediction_areas

    def surface_dice(self, tolerance: float) -> float:
        """Area-weighted fraction of both surfaces within ``tolerance`` mm; NaN if both empty."""
        total = float(self.reference_areas.sum() + self.prediction_areas.sum())
        if total == 0:
            return float("nan")
        inside = float(self.reference_areas[self.reference_to_prediction <= tolerance].sum())
        inside += float(self.prediction_areas[self.prediction_to_reference <= tolerance].sum())
        return inside / total

    def robust_hausdorff(self, percent: float = 95.0) -> float:
        """Area-weighted percentile HD (``compute_robust_hausdorff``): max of both directions.

        Per direction: surfels sorted by (distance, area), the first whose cumulative area
        fraction reaches ``percent``; ``inf`` for a direction without surfels.
        """
        out = []
        for distances, areas in (
            (self.reference_to_prediction, self.reference_areas),
            (self.prediction_to_reference, self.prediction_areas),
        ):
            if distances.size == 0:
                out.append(float("inf"))
                continue
            order = np.lexsort((areas, distances))
            cumulative = np.cumsum(areas[order]) / np.sum(areas)
            index = int(np.searchsorted(cumulative, percent / 100.0))
            out.append(float(distances[order][min(index, distances.size - 1)]))
        return max(out)


def surfel_distances(
    reference: ArrayLike, prediction: ArrayLike, spacing: Sequence[float]
) -> SurfelDistances:
    """Distances and areas of the surfels of two binary masks (2D or 3D), as surface-distance.

    Args:
        reference: Binary mask. Not modified.
        prediction: Binary mask of the same shape. Not modified.
        spacing: Voxel size per array axis, mm.

    Returns:
        The surfel distances and areas (empty arrays where a mask is empty).

    Examples:
        >>> ref = np.zeros((4, 4), dtype=bool); ref[1:3, 1:3] = True
        >>> d = surfel_distances(ref, ref, (1.0, 1.0))
        >>> round(float(d.reference_areas.sum()), 4), float(d.reference_to_prediction.max())
        (6.8284, 0.0)
    """
    ref = np.asarray(reference, dtype=bool)
    pred = np.asarray(prediction, dtype=bool)
    if ref.shape != pred.shape or ref.ndim not in (2, 3) or len(spacing) != ref.ndim:
        raise ValueError(
            "reference and prediction must be 2D or 3D masks of one shape with one spacing per "
            f"axis; got {ref.shape}, {pred.shape} and spacing {tuple(spacing)}."
        )
    sampling = tuple(float(s) for s in spacing)
    empty = np.zeros(0, dtype=np.float64)
    box = crop_box(ref, pred)
    if box is None:
        return SurfelDistances(empty, empty, empty, empty)
    areas = neighbour_code_areas(sampling)
    full = 2 ** (2**ref.ndim) - 1
    codes = [_codes(ref[box]), _codes(pred[box])]
    borders = [(c != 0) & (c != full) for c in codes]
    if borders[0].any() and borders[1].any():
        to_ref, to_pred = surface_point_distances(borders[0], borders[1], sampling)
    else:
        to_ref = np.full(int(borders[1].sum()), np.inf)
        to_pred = np.full(int(borders[0].sum()), np.inf)
    return SurfelDistances(
        reference_to_prediction=np.asarray(to_pred, dtype=np.float64),
        prediction_to_reference=np.asarray(to_ref, dtype=np.float64),
        reference_areas=areas[codes[0][borders[0]]],
        prediction_areas=areas[codes[1][borders[1]]],
    )


def surfel_surface_dice(
    reference: ArrayLike, prediction: ArrayLike, spacing: Sequence[float], tolerance: float
) -> float:
    """Surfel NSD (``surface-distance``'s ``compute_surface_dice_at_tolerance``) of two masks.

    NaN when both masks are empty, 0 when one is.

    Examples:
        >>> ref = np.zeros((6, 6, 6), dtype=bool); ref[1:4, 1:4, 1:4] = True
        >>> pred = np.zeros_like(ref); pred[1:4, 1:4, 2:5] = True
        >>> round(surfel_surface_dice(ref, pred, (1.0, 1.0, 2.0), 1.0), 6)
        0.799947
    """
    return surfel_distances(reference, prediction, spacing).surface_dice(float(tolerance))
