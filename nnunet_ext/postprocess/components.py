"""Connected-component filters on label maps: keep the largest, remove small objects.

Pure array functions (no file access). Components are found with connected-components-3d
(``cc3d``) in one multi-label pass; results equal a per-label ``scipy.ndimage.label`` reference
(see ``tests/postprocess/test_components.py``).

Connectivity follows scipy's convention everywhere in the public API: ``1`` joins faces, ``2``
adds edges and ``ndim`` is full connectivity (8 neighbours in 2D, 26 in 3D). ``None`` means full,
which is what nnU-Net's ``remove_all_but_largest_component`` (skimage ``connectivity=None``) uses.

Removed voxels become background (0). Ties: every component tied for the largest size is kept,
exactly as nnU-Net (``acvl_utils`` keeps all components whose size equals the maximum).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "check_connectivity",
    "check_labels_array",
    "foreground_bbox",
    "keep_largest_component",
    "keep_largest_foreground_component",
    "remove_small_components",
]

_CC3D_CONNECTIVITY = {2: {1: 4, 2: 8}, 3: {1: 6, 2: 18, 3: 26}}


def check_labels_array(labels: NDArray[Any], *, name: str = "labels") -> None:
    """Check that ``labels`` is a 2D or 3D array of non-negative integers.

    Raises:
        TypeError: If ``labels`` is not an integer numpy array.
        ValueError: If it is not 2D or 3D.
    """
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{name} must be a numpy array; got {type(labels).__name__}.")
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integer labels; got dtype={labels.dtype}. "
            "Convert with nnunet_ext.io.as_exact_labels first."
        )
    if labels.ndim not in (2, 3):
        raise ValueError(f"{name} must be 2D or 3D; got shape={labels.shape}.")


def check_connectivity(connectivity: int | None, *, ndim: int) -> int:
    """Validate ``connectivity`` (scipy convention) and return it, ``None`` meaning ``ndim``.

    Examples:
        >>> check_connectivity(None, ndim=3), check_connectivity(1, ndim=2)
        (3, 1)
    """
    if connectivity is None:
        return ndim
    if isinstance(connectivity, bool) or not isinstance(connectivity, (int, np.integer)):
        raise TypeError(f"connectivity must be an int; got {type(connectivity).__name__}.")
    if not 1 <= int(connectivity) <= ndim:
        raise ValueError(
            f"connectivity must be in [1, {ndim}] for a {ndim}-D label map; got {connectivity}."
        )
    return int(connectivity)


def _cc3d_connectivity(connectivity: int | None, ndim: int) -> int:
    return _CC3D_CONNECTIVITY[ndim][check_connectivity(connectivity, ndim=ndim)]


def _label_ids(label_ids: Iterable[int], *, name: str = "label_ids") -> list[int]:
    ids = sorted({int(v) for v in label_ids})
    if any(v <= 0 for v in ids):
        raise ValueError(f"{name} must be foreground labels (> 0); got {ids}.")
    return ids


def foreground_bbox(labels: NDArray[Any]) -> tuple[slice, ...] | None:
    """Return the bounding box of the non-zero voxels as slices, or ``None`` if there are none.

    Examples:
        >>> foreground_bbox(np.array([[0, 0, 0], [0, 2, 1], [0, 0, 0]]))
        (slice(1, 2, None), slice(1, 3, None))
        >>> foreground_bbox(np.zeros((2, 2), dtype=np.uint8)) is None
        True
    """
    nonzero = labels != 0
    slices = []
    for axis in range(labels.ndim):
        other = tuple(a for a in range(labels.ndim) if a != axis)
        present = np.flatnonzero(np.any(nonzero, axis=other))
        if present.size == 0:
            return None
        slices.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(slices)


def _components(
    values: NDArray[Any], connectivity: int | None
) -> tuple[NDArray[Any], NDArray[np.int64], NDArray[Any]]:
    """Label each value's components in one pass: (component map, sizes, owner value per id)."""
    import cc3d

    label_components: Any = cc3d.connected_components
    components = label_components(
        np.ascontiguousarray(values), connectivity=_cc3d_connectivity(connectivity, values.ndim)
    )
    flat = components.ravel()
    sizes = np.bincount(flat).astype(np.int64)
    owner = np.zeros(sizes.size, dtype=values.dtype)
    owner[flat] = values.ravel()
    return components, sizes, owner


def keep_largest_component(
    labels: NDArray[np.integer[Any]],
    *,
    label_ids: Iterable[int],
    connectivity: int | None = None,
) -> NDArray[np.integer[Any]]:
    """Keep, for each label in ``label_ids`` separately, only its largest connected component.

    Voxels of the other components of that label become background (0); other labels are left
    alone. Components tied for the largest size are all kept (nnU-Net's rule). A label that is
    absent stays absent.

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        label_ids: The labels to filter (> 0).
        connectivity: 1..ndim in scipy's convention; ``None`` (default) is full connectivity.

    Returns:
        A new array of the same shape and dtype.

    Raises:
        TypeError: If ``labels`` is not an integer array.
        ValueError: For a bad ``connectivity`` or a label id <= 0.

    Examples:
        >>> labels = np.array([[1, 1, 0, 1],
        ...                    [0, 0, 0, 0],
        ...                    [2, 0, 2, 2]], dtype=np.uint8)
        >>> keep_largest_component(labels, label_ids=[1, 2])
        array([[1, 1, 0, 0],
               [0, 0, 0, 0],
               [0, 0, 2, 2]], dtype=uint8)
        >>> keep_largest_component(np.array([[1, 0, 1]], dtype=np.uint8), label_ids=[1])
        array([[1, 0, 1]], dtype=uint8)
    """
    check_labels_array(labels)
    check_connectivity(connectivity, ndim=labels.ndim)
    ids = _label_ids(label_ids)
    out: NDArray[np.integer[Any]] = np.array(labels, copy=True)
    box = foreground_bbox(labels)
    if box is None or not ids:
        return out
    crop = labels[box]
    chosen = np.isin(crop, ids)
    selected = np.where(chosen, crop, 0).astype(crop.dtype, copy=False)
    components, sizes, owner = _components(selected, connectivity)
    sizes[0] = 0
    largest = np.zeros(int(owner.max()) + 1, dtype=np.int64)
    np.maximum.at(largest, owner[1:].astype(np.intp), sizes[1:])
    remove = sizes < largest[owner.astype(np.intp)]
    remove[0] = False
    out[box][remove[components]] = 0
    return out


def keep_largest_foreground_component(
    labels: NDArray[np.integer[Any]],
    *,
    label_ids: Iterable[int] | None = None,
    connectivity: int | None = None,
) -> NDArray[np.integer[Any]]:
    """Keep only the largest connected component of the union of ``label_ids`` (nnU-Net's way).

    The union mask is split into components regardless of the label values inside; voxels of
    the union outside the largest component(s) become 0. Ties keep all tied components.

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        label_ids: Labels forming the union; ``None`` means every non-zero label.
        connectivity: 1..ndim in scipy's convention; ``None`` (default) is full connectivity.

    Returns:
        A new array of the same shape and dtype.

    Examples:
        >>> labels = np.array([[1, 2, 0, 0, 3]], dtype=np.uint8)
        >>> keep_largest_foreground_component(labels)
        array([[1, 2, 0, 0, 0]], dtype=uint8)
    """
    check_labels_array(labels)
    check_connectivity(connectivity, ndim=labels.ndim)
    out: NDArray[np.integer[Any]] = np.array(labels, copy=True)
    box = foreground_bbox(labels)
    if box is None:
        return out
    crop = labels[box]
    mask = crop != 0 if label_ids is None else np.isin(crop, _label_ids(label_ids))
    components, sizes, _ = _components(mask.view(np.uint8), connectivity)
    sizes[0] = 0
    remove = sizes < sizes.max()
    remove[0] = False
    out[box][remove[components]] = 0
    return out


def remove_small_components(
    labels: NDArray[np.integer[Any]],
    *,
    min_voxels: Mapping[int, float],
    connectivity: int | None = None,
) -> NDArray[np.integer[Any]]:
    """Set components with fewer than ``min_voxels[label]`` voxels to background, per label.

    The threshold is exclusive: with ``min_voxels={1: 3}`` a component of 3 voxels stays and
    one of 2 voxels goes. A float threshold (from a volume in mm³) works the same way.

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        min_voxels: Label (> 0) to the smallest component size kept, in voxels (>= 0).
        connectivity: 1..ndim in scipy's convention; ``None`` (default) is full connectivity.

    Returns:
        A new array of the same shape and dtype.

    Examples:
        >>> labels = np.array([[1, 1, 1, 0, 1, 0, 2]], dtype=np.uint8)
        >>> remove_small_components(labels, min_voxels={1: 2})
        array([[1, 1, 1, 0, 0, 0, 2]], dtype=uint8)
    """
    check_labels_array(labels)
    check_connectivity(connectivity, ndim=labels.ndim)
    thresholds: dict[int, float] = {}
    for label, size in min_voxels.items():
        _label_ids([label], name="min_voxels keys")
        if not np.isfinite(size) or size < 0:
            raise ValueError(f"min_voxels[{label}] must be a finite number >= 0; got {size}.")
        thresholds[int(label)] = float(size)
    out: NDArray[np.integer[Any]] = np.array(labels, copy=True)
    box = foreground_bbox(labels)
    if box is None or not thresholds:
        return out
    crop = labels[box]
    ids = sorted(thresholds)
    selected = np.where(np.isin(crop, ids), crop, 0).astype(crop.dtype, copy=False)
    components, sizes, owner = _components(selected, connectivity)
    lut = np.zeros(int(owner.max()) + 1, dtype=np.float64)
    for label in ids:
        if label < lut.size:
            lut[label] = thresholds[label]
    remove = sizes < lut[owner.astype(np.intp)]
    remove[0] = False
    out[box][remove[components]] = 0
    return out
