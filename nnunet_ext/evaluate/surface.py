"""Boundary metrics: Hausdorff distance, HD95, ASSD, NSD, from surface voxels in millimetres.

Surface voxels (the definition MONAI's ``get_mask_edges`` and MedPy's ``__surface_distances``
share): the voxels of a mask with at least one face neighbour (6-connectivity in 3D,
4-connectivity in 2D) outside the mask or outside the image, i.e. ``mask ^ binary_erosion(mask)``
with SciPy's default cross-shaped structure and a zero border.

For each pair of masks the two directed distance arrays are computed once: from every predicted
surface voxel to the nearest reference surface voxel, and back, exact Euclidean distances in
millimetres (anisotropic spacing respected). When the surfaces are sparse in the crop (fewer
surface voxels than a quarter of the crop's voxels, the usual case for compact organs), each
surface voxel looks at the voxel offsets around it in order of physical length (up to two voxels
along the coarsest axis, at most 256 offsets): the first offset that lands on the other surface
gives the exact nearest distance (voxels on both surfaces: the zero offset, distance 0); the few
voxels farther away are found by a SciPy ``cKDTree`` nearest-neighbour query over the other
surface's physical coordinates (as MONAI 1.6 does on CPU). Dense surfaces use SciPy's
``distance_transform_edt`` with ``sampling=spacing`` on the crop. All give the same distances.
Every metric is derived from these two arrays:

* ``hd``: the larger of the two directed maxima (MONAI ``compute_hausdorff_distance``, MedPy
  ``hd``).
* ``hd95``: the larger of the two directed 95th percentiles, linear interpolation (MONAI
  ``compute_hausdorff_distance(percentile=95)``).
* ``hd95_pooled``: the 95th percentile of both arrays pooled (MedPy ``hd95``).
* ``assd``: the mean of both arrays pooled, i.e. over the surface voxels of both masks (MedPy
  ``assd`` 0.5, MONAI ``compute_average_surface_distance(symmetric=True)``).
* ``nsd``: by default (``nsd_definition="voxel"``) the fraction of surface voxels of both masks
  within the tolerance of the other surface (MONAI ``compute_surface_dice`` without sub-voxels;
  compared in float32 as MONAI does); ``"panoptica"``: the mean of the two directed fractions
  (panoptica 2.1.7's and GaNDLF's NSD, compared in float64). The third definition, DeepMind's
  area-weighted surfel NSD on the corner grid, needs other surfaces:
  :mod:`nnunet_ext.evaluate.surfels`.

Speed: the work is done on a crop around both masks (their joint bounding box plus one voxel
of zero padding, which is exact: every surface voxel lies inside, and the padding plays the
image border), the surfaces are extracted once per mask with array slicing, and only two
distance searches run per label.

Empty masks are not handled here: :func:`surface_distances` needs both masks non-empty; the
values for empty cases come from :mod:`nnunet_ext.evaluate.conventions`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DISTANCE_METRICS",
    "NSD_DEFINITIONS",
    "SurfaceDistances",
    "crop_box",
    "distance_metrics",
    "mask_surface",
    "pair_box",
    "surface_distances",
    "surface_point_distances",
]

#: Metrics derived from the two directed surface-distance arrays.
DISTANCE_METRICS: tuple[str, ...] = ("hd", "hd95", "hd95_pooled", "assd", "nsd")
#: NSD definitions: surface voxels pooled (MONAI), surfels by area (surface-distance), the mean
#: of the two directed fractions (panoptica).
NSD_DEFINITIONS: tuple[str, ...] = ("voxel", "surfel", "panoptica")


def crop_box(*masks: NDArray[np.bool_]) -> tuple[slice, ...] | None:
    """Bounding box of the union of ``masks`` as slices, or ``None`` when all are empty.

    Examples:
        >>> m = np.zeros((4, 5), dtype=bool); m[1, 2] = m[2, 3] = True
        >>> crop_box(m)
        (slice(1, 3, None), slice(2, 4, None))
    """
    boxes = [box for box in map(_mask_box, masks) if box is not None]
    if not boxes:
        return None
    return tuple(
        slice(min(b[axis].start for b in boxes), max(b[axis].stop for b in boxes))
        for axis in range(len(boxes[0]))
    )


def pair_box(
    reference: NDArray[np.bool_], prediction: NDArray[np.bool_]
) -> tuple[slice, ...] | None:
    """Joint bounding box of two masks, or ``None`` when either is empty.

    Examples:
        >>> a = np.zeros((3, 4), dtype=bool); a[0, 1] = True
        >>> b = np.zeros((3, 4), dtype=bool); b[2, 2] = True
        >>> pair_box(a, b), pair_box(a, np.zeros_like(a))
        ((slice(0, 3, None), slice(1, 3, None)), None)
    """
    ref_box, pred_box = _mask_box(reference), _mask_box(prediction)
    if ref_box is None or pred_box is None:
        return None
    return tuple(
        slice(min(r.start, p.start), max(r.stop, p.stop))
        for r, p in zip(ref_box, pred_box, strict=True)
    )


def _mask_box(mask: NDArray[np.bool_]) -> tuple[slice, ...] | None:
    # two passes over the mask: the profile along the first axis, and the projection of the
    # rest, whose box comes from the (small) projection
    if mask.ndim == 0:
        return () if bool(mask) else None
    profile = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if profile.size == 0:
        return None
    rest = _mask_box(np.asarray(mask.any(axis=0))) if mask.ndim > 1 else ()
    if rest is None:
        return None
    return (slice(int(profile[0]), int(profile[-1]) + 1), *rest)


def _padded_crop(mask: NDArray[np.bool_], box: tuple[slice, ...]) -> NDArray[np.bool_]:
    return np.pad(mask[box], 1, mode="constant", constant_values=False)


def mask_surface(mask: ArrayLike) -> NDArray[np.bool_]:
    """Surface voxels of a binary mask: those with a face neighbour outside it or the image.

    Equal to ``mask ^ scipy.ndimage.binary_erosion(mask)`` (cross structure, zero border).

    Examples:
        >>> m = np.zeros((5, 5), dtype=bool); m[1:4, 1:4] = True
        >>> mask_surface(m).astype(int)
        array([[0, 0, 0, 0, 0],
               [0, 1, 1, 1, 0],
               [0, 1, 0, 1, 0],
               [0, 1, 1, 1, 0],
               [0, 0, 0, 0, 0]])
    """
    m = np.asarray(mask, dtype=bool)
    padded = np.pad(m, 1, mode="constant", constant_values=False)
    inner = tuple(slice(1, -1) for _ in range(m.ndim))
    interior = m.copy()
    for axis in range(m.ndim):
        for shift in (slice(None, -2), slice(2, None)):
            index = list(inner)
            index[axis] = shift
            interior &= padded[tuple(index)]
    surface: NDArray[np.bool_] = m & ~interior
    return surface


@dataclass(frozen=True)
class SurfaceDistances:
    """The two directed surface-distance arrays of a reference/prediction pair, in mm.

    Attributes:
        prediction_to_reference: For each predicted surface voxel, the distance to the nearest
            reference surface voxel.
        reference_to_prediction: For each reference surface voxel, the distance to the nearest
            predicted surface voxel.
    """

    prediction_to_reference: NDArray[np.float64]
    reference_to_prediction: NDArray[np.float64]


def surface_distances(
    reference: ArrayLike, prediction: ArrayLike, spacing: Sequence[float]
) -> SurfaceDistances:
    """Directed distances between the surfaces of two non-empty binary masks.

    Args:
        reference: Binary mask (ground truth), any dimension. Not modified.
        prediction: Binary mask of the same shape. Not modified.
        spacing: Voxel size per array axis (numpy order), in mm.

    Returns:
        The two directed distance arrays.

    Raises:
        ValueError: If a mask is empty, the shapes differ, or the spacing does not fit.

    Examples:
        >>> ref = np.zeros((1, 6), dtype=bool); ref[0, 1:3] = True
        >>> pred = np.zeros((1, 6), dtype=bool); pred[0, 1:5] = True
        >>> d = surface_distances(ref, pred, (1.0, 0.5))
        >>> d.prediction_to_reference.tolist(), d.reference_to_prediction.tolist()
        ([0.0, 0.0, 0.5, 1.0], [0.0, 0.0])
    """
    ref = np.asarray(reference, dtype=bool)
    pred = np.asarray(prediction, dtype=bool)
    if ref.shape != pred.shape:
        raise ValueError(
            f"reference and prediction must have the same shape; got {ref.shape} and {pred.shape}."
        )
    sampling = tuple(float(s) for s in spacing)
    if len(sampling) != ref.ndim or not all(np.isfinite(s) and s > 0 for s in sampling):
        raise ValueError(
            f"spacing must hold {ref.ndim} positive numbers (mm per axis); got {tuple(spacing)}."
        )
    box = pair_box(ref, pred)
    if box is None:
        raise ValueError("surface_distances needs two non-empty masks; handle empty ones first.")
    ref_surface = mask_surface(_padded_crop(ref, box))
    pred_surface = mask_surface(_padded_crop(pred, box))
    to_ref, to_pred = surface_point_distances(ref_surface, pred_surface, sampling)
    return SurfaceDistances(
        prediction_to_reference=np.asarray(to_ref, dtype=np.float64),
        reference_to_prediction=np.asarray(to_pred, dtype=np.float64),
    )


def surface_point_distances(
    ref_surface: NDArray[np.bool_], pred_surface: NDArray[np.bool_], sampling: tuple[float, ...]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact distances (mm) between two non-empty point sets on one grid, both directions.

    Args:
        ref_surface: Reference points (``True``), any grid (voxels or voxel corners).
        pred_surface: Predicted points on the same grid.
        sampling: Grid step per axis, mm.

    Returns:
        ``(to_reference, to_prediction)``: for each predicted point (C order) the distance to
        the nearest reference point, and for each reference point to the nearest predicted one.

    Examples:
        >>> a = np.array([[True, False, False]]); b = np.array([[False, False, True]])
        >>> surface_point_distances(a, b, (1.0, 0.5))
        (array([1.]), array([1.]))
    """
    num_points = np.count_nonzero(ref_surface) + np.count_nonzero(pred_surface)
    if num_points * SPARSE_FRACTION < ref_surface.size:
        return _surface_pair_distances(ref_surface, pred_surface, sampling)
    return _transform_distances(ref_surface, pred_surface, sampling)


#: The voxel-offset search (and a tree for what it leaves) replaces distance transforms when
#: the surface voxels of both masks are fewer than ``1 / SPARSE_FRACTION`` of the crop.
SPARSE_FRACTION = 4


def _transform_distances(
    ref_surface: NDArray[np.bool_], pred_surface: NDArray[np.bool_], sampling: tuple[float, ...]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    from scipy.ndimage import distance_transform_edt

    to_ref = distance_transform_edt(~ref_surface, sampling=sampling)[pred_surface]
    to_pred = distance_transform_edt(~pred_surface, sampling=sampling)[ref_surface]
    return to_ref, to_pred


@functools.lru_cache(maxsize=16)
def _stencil(sampling: tuple[float, ...]) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Voxel offsets nearest first, and their lengths in mm.

    All offsets up to two voxels along the coarsest axis (at most eight along the finest), at
    most :data:`STENCIL_SIZE` of them: a prefix in order of length, so every offset shorter than
    the last one is included.
    """
    scale = np.asarray(sampling, dtype=np.float64)
    radius = min(2 * float(scale.max()), 8 * float(scale.min()))
    reach = np.floor(radius / scale).astype(int)
    grids = np.meshgrid(*(np.arange(-r, r + 1) for r in reach), indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    lengths = np.sqrt(((offsets * scale) ** 2).sum(axis=1))
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] <= radius][:STENCIL_SIZE]
    return offsets[order], lengths[order]


#: Most offsets the voxel search looks at before the tree takes over.
STENCIL_SIZE = 256


def _surface_pair_distances(
    ref_surface: NDArray[np.bool_], pred_surface: NDArray[np.bool_], sampling: tuple[float, ...]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both directed distance arrays of two surfaces on the same (zero-bordered) crop.

    Distances up to the stencil radius are found exactly by looking at the voxel offsets in
    order of length (the first offset that hits the other surface is the nearest one); the
    rest, usually few, by a nearest-neighbour query over the other surface's voxels.
    """
    offsets, lengths = _stencil(sampling)
    reach = np.abs(offsets).max(axis=0)
    pad = [(int(r), int(r)) for r in reach]
    ref_padded = np.pad(ref_surface, pad)
    pred_padded = np.pad(pred_surface, pad)
    strides = np.asarray(ref_padded.strides, dtype=np.intp) // ref_padded.itemsize
    flat_offsets = offsets @ strides
    ref_flat, pred_flat = ref_padded.ravel(), pred_padded.ravel()
    ref_index, pred_index = np.flatnonzero(ref_flat), np.flatnonzero(pred_flat)
    scale = np.asarray(sampling, dtype=np.float64)
    out = []
    for source, target_flat, target_index in (
        (pred_index, ref_flat, ref_index),
        (ref_index, pred_flat, pred_index),
    ):
        distances = np.empty(source.size, dtype=np.float64)
        todo, position = np.arange(source.size), source
        for offset, length in zip(flat_offsets.tolist(), lengths.tolist(), strict=True):
            hit = target_flat[position + offset]
            if hit.any():
                distances[todo[hit]] = length
                missed = ~hit
                todo, position = todo[missed], position[missed]
                if todo.size == 0:
                    break
        if todo.size:
            distances[todo] = _tree_query(
                np.stack(np.unravel_index(target_index, ref_padded.shape), axis=1) * scale,
                np.stack(np.unravel_index(position, ref_padded.shape), axis=1) * scale,
                scale,
            )
        out.append(distances)
    return out[0], out[1]


def _tree_query(
    target: NDArray[np.float64], points: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float64]:
    from scipy.spatial import cKDTree

    tree = cKDTree(target, leafsize=32, balanced_tree=False, compact_nodes=False)
    # most remaining distances are still small: a bounded search first (prunes the tree),
    # then an unbounded one for the points it left (inf); exact either way
    found: NDArray[np.float64] = tree.query(
        points, k=1, distance_upper_bound=2 * float(scale.max())
    )[0]
    far = ~np.isfinite(found)
    if far.any():
        found[far] = tree.query(points[far], k=1)[0]
    return found


def distance_metrics(
    distances: SurfaceDistances,
    metrics: Sequence[str] = DISTANCE_METRICS,
    *,
    nsd_tolerance: float = 1.0,
    nsd_definition: str = "voxel",
) -> dict[str, float]:
    """Derive boundary metrics from the two directed distance arrays.

    Args:
        distances: From :func:`surface_distances`.
        metrics: Names out of :data:`DISTANCE_METRICS`.
        nsd_tolerance: NSD tolerance in mm (a surface voxel counts if within it).
        nsd_definition: ``"voxel"`` (pooled surface voxels, MONAI) or ``"panoptica"`` (mean of
            the two directed fractions); ``"surfel"`` needs the masks
            (:func:`nnunet_ext.evaluate.surfels.surfel_surface_dice`).

    Returns:
        Metric name to value (mm for distances, a fraction for ``nsd``).

    Raises:
        ValueError: For an unknown metric name or a negative tolerance.

    Examples:
        >>> d = SurfaceDistances(np.array([0.0, 1.0, 2.0]), np.array([0.0, 4.0]))
        >>> distance_metrics(d, ("hd", "assd", "nsd"), nsd_tolerance=1.0)
        {'hd': 4.0, 'assd': 1.4, 'nsd': 0.6}
        >>> distance_metrics(d, ("nsd",), nsd_definition="panoptica")
        {'nsd': 0.5833333333333333}
    """
    unknown = [m for m in metrics if m not in DISTANCE_METRICS]
    if unknown:
        raise ValueError(f"unknown distance metric(s) {unknown}; known: {list(DISTANCE_METRICS)}.")
    if not (np.isfinite(nsd_tolerance) and nsd_tolerance >= 0):
        raise ValueError(f"nsd_tolerance must be a finite number >= 0 (mm); got {nsd_tolerance}.")
    if nsd_definition not in ("voxel", "panoptica"):
        raise ValueError(
            f"nsd_definition must be 'voxel' or 'panoptica' here; got {nsd_definition!r}. "
            "The surfel NSD is computed from the masks (nnunet_ext.evaluate.surfels)."
        )
    a, b = distances.prediction_to_reference, distances.reference_to_prediction
    out: dict[str, float] = {}
    for name in metrics:
        value: Any
        if name == "hd":
            value = max(a.max(), b.max())
        elif name == "hd95":
            value = max(np.percentile(a, 95), np.percentile(b, 95))
        elif name == "hd95_pooled":
            value = np.percentile(np.concatenate([a, b]), 95)
        elif name == "assd":
            value = np.concatenate([a, b]).mean()
        elif nsd_definition == "panoptica":  # mean of the directed fractions, float64
            value = (np.mean(a <= nsd_tolerance) + np.mean(b <= nsd_tolerance)) / 2
        else:  # nsd, compared in float32 as MONAI does (its distances are float32)
            tolerance = np.float32(nsd_tolerance)
            within = int((a.astype(np.float32) <= tolerance).sum())
            within += int((b.astype(np.float32) <= tolerance).sum())
            value = within / (a.size + b.size)
        out[name] = float(value)
    return out
