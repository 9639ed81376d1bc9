"""Component rules per label: relabel small, gate a volume, keep top k, drop improbable ones.

The rules challenge winners add on top of nnU-Net's postprocessing.

Pure array functions (no file access). The components of one label are found with
connected-components-3d (``cc3d``) on that label's mask alone: voxels of other labels are never
part of them, so a component of label 3 touching a component of label 1 is still its own
component, and after a relabel to 1 the two touch as one region of label 1. Results equal a
``scipy.ndimage.label`` reference voxel for voxel (``tests/postprocess/test_component_rules.py``).

Sizes are voxel counts; every size threshold is exclusive (a component *below* the size changes,
one of exactly the size stays), as :func:`~nnunet_ext.postprocess.remove_small_components`.
Connectivity follows scipy's convention (``1`` faces ... ``ndim`` full; ``None`` is full).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.postprocess.components import (
    _cc3d_connectivity,
    check_connectivity,
    check_labels_array,
    foreground_bbox,
)

__all__ = [
    "STATISTICS",
    "component_probability",
    "drop_improbable_components",
    "gate_label_volume",
    "keep_top_k_components",
    "label_components",
    "relabel_small_components",
]

#: How a component's probability is summarised for :func:`drop_improbable_components`.
STATISTICS = ("max", "mean")


def _check_label(label: int, name: str, *, allow_zero: bool = False) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise TypeError(f"{name} must be an int label value; got {type(label).__name__}.")
    if int(label) < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be a label value >= {0 if allow_zero else 1}; got {label}.")
    return int(label)


def label_components(
    labels: NDArray[np.integer[Any]], label: int, *, connectivity: int | None = None
) -> tuple[tuple[slice, ...] | None, NDArray[np.int64], NDArray[np.int64]]:
    """The connected components of one label: (bounding box, component ids, sizes).

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        label: The label value (> 0).
        connectivity: 1..ndim in scipy's convention; ``None`` is full.

    Returns:
        The bounding box of ``label`` (``None`` when absent), the component id of every voxel of
        that box (0 outside the label; ids numbered in scan order from 1) and the size of each id
        (``sizes[0]`` is 0).

    Examples:
        >>> box, ids, sizes = label_components(np.array([[1, 0, 1, 1]], dtype=np.uint8), 1)
        >>> box, ids.tolist(), sizes.tolist()
        ((slice(0, 1, None), slice(0, 4, None)), [[1, 0, 2, 2]], [0, 1, 2])
    """
    import cc3d

    mask = labels == label
    box = foreground_bbox(mask.view(np.uint8))
    if box is None:
        return None, np.zeros((0,) * labels.ndim, dtype=np.int64), np.zeros(1, dtype=np.int64)
    run: Any = cc3d.connected_components
    ids = run(
        np.ascontiguousarray(mask[box]).view(np.uint8),
        connectivity=_cc3d_connectivity(connectivity, labels.ndim),
    ).astype(np.int64, copy=False)
    sizes = np.bincount(ids.ravel()).astype(np.int64)
    sizes[0] = 0
    return box, ids, sizes


def _change(
    labels: NDArray[np.integer[Any]],
    box: tuple[slice, ...] | None,
    ids: NDArray[np.int64],
    changed: NDArray[np.bool_],
    to: int,
) -> NDArray[np.integer[Any]]:
    """A copy of ``labels`` with the components marked in ``changed`` (by id) set to ``to``."""
    out: NDArray[np.integer[Any]] = np.array(labels, copy=True)
    if box is not None and changed.any():
        changed = changed.copy()
        changed[0] = False
        out[box][changed[ids]] = to
    return out


def _check(labels: NDArray[Any], connectivity: int | None, label: int, to: int | None) -> None:
    check_labels_array(labels)
    check_connectivity(connectivity, ndim=labels.ndim)
    _check_label(label, "label")
    if to is not None:
        _check_label(to, "to", allow_zero=True)
        if int(to) > np.iinfo(labels.dtype).max:
            raise ValueError(f"to must fit dtype {labels.dtype}; got {to}.")


def _check_size(size: float, name: str) -> float:
    if isinstance(size, bool) or not np.isfinite(size) or size < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {size!r}.")
    return float(size)


def relabel_small_components(
    labels: NDArray[np.integer[Any]],
    *,
    label: int,
    to: int,
    min_voxels: float,
    connectivity: int | None = None,
) -> NDArray[np.integer[Any]]:
    """Give every component of ``label`` with fewer than ``min_voxels`` voxels the label ``to``.

    A small enhancing-tumour island becomes necrosis (``to`` > 0), or background (``to=0``, then
    this is :func:`~nnunet_ext.postprocess.remove_small_components` for one label).

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        label: The label whose small components change (> 0).
        to: Their new label (0 is background).
        min_voxels: Components smaller than this change; one of exactly this size stays.
        connectivity: 1..ndim in scipy's convention; ``None`` (default) is full connectivity.

    Returns:
        A new array of the same shape and dtype.

    Raises:
        TypeError: If ``labels`` is not an integer array or a label is not an int.
        ValueError: For a bad connectivity, size or label value.

    Examples:
        The 1-voxel island of 3 becomes 1; the 2-voxel one stays (the size is exclusive). The
        island touching label 1 is its own component of 3 before; after, it is part of 1:

        >>> labels = np.array([[3, 0, 3, 3, 0, 1, 3]], dtype=np.uint8)
        >>> relabel_small_components(labels, label=3, to=1, min_voxels=2)
        array([[1, 0, 3, 3, 0, 1, 1]], dtype=uint8)

        With face connectivity the diagonal voxels are two components of one voxel each:

        >>> diagonal = np.array([[3, 0], [0, 3]], dtype=np.uint8)
        >>> relabel_small_components(diagonal, label=3, to=0, min_voxels=2, connectivity=1)
        array([[0, 0],
               [0, 0]], dtype=uint8)
        >>> relabel_small_components(diagonal, label=3, to=0, min_voxels=2)
        array([[3, 0],
               [0, 3]], dtype=uint8)
    """
    _check(labels, connectivity, label, to)
    threshold = _check_size(min_voxels, "min_voxels")
    box, ids, sizes = label_components(labels, label, connectivity=connectivity)
    return _change(labels, box, ids, sizes < threshold, to)


def gate_label_volume(
    labels: NDArray[np.integer[Any]], *, label: int, to: int, min_voxels: float
) -> NDArray[np.integer[Any]]:
    """Give all of ``label`` the label ``to`` when the whole label has fewer than ``min_voxels``.

    The gate looks at the label's total volume in the case, over all its components (no
    connectivity): a case whose whole label is a few hundred voxels is likely a false positive.

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        label: The gated label (> 0).
        to: Its new label under the gate (0 is background).
        min_voxels: A total below this changes; a total of exactly this stays.

    Returns:
        A new array of the same shape and dtype.

    Examples:
        Three voxels of 2 in all, gated at 4: they all become background; at 3 they stay:

        >>> labels = np.array([[2, 0, 2, 1, 2]], dtype=np.uint8)
        >>> gate_label_volume(labels, label=2, to=0, min_voxels=4)
        array([[0, 0, 0, 1, 0]], dtype=uint8)
        >>> gate_label_volume(labels, label=2, to=0, min_voxels=3)
        array([[2, 0, 2, 1, 2]], dtype=uint8)
    """
    _check(labels, None, label, to)
    threshold = _check_size(min_voxels, "min_voxels")
    mask = labels == label
    out: NDArray[np.integer[Any]] = np.array(labels, copy=True)
    if int(np.count_nonzero(mask)) < threshold:
        out[mask] = to
    return out


def keep_top_k_components(
    labels: NDArray[np.integer[Any]],
    *,
    label: int,
    k: int,
    connectivity: int | None = None,
) -> NDArray[np.integer[Any]]:
    """Keep the ``k`` largest components of ``label``; the others become background.

    Ties: every component at least as large as the ``k``-th largest is kept, so components tied
    at the ``k``-th size are all kept (``k=1`` is
    :func:`~nnunet_ext.postprocess.keep_largest_component`, nnU-Net's rule for ties).

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        label: The label (> 0).
        k: How many components to keep (>= 1).
        connectivity: 1..ndim in scipy's convention; ``None`` (default) is full connectivity.

    Returns:
        A new array of the same shape and dtype.

    Examples:
        Sizes 3, 1, 2 and 1: the top 2 are the sizes 3 and 2; with ``k=3`` both 1-voxel
        components tie for the third place and both stay:

        >>> labels = np.array([[1, 1, 1, 0, 1, 0, 1, 1, 0, 1]], dtype=np.uint8)
        >>> keep_top_k_components(labels, label=1, k=2)
        array([[1, 1, 1, 0, 0, 0, 1, 1, 0, 0]], dtype=uint8)
        >>> keep_top_k_components(labels, label=1, k=3)
        array([[1, 1, 1, 0, 1, 0, 1, 1, 0, 1]], dtype=uint8)
    """
    _check(labels, connectivity, label, None)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1; got {k!r}.")
    box, ids, sizes = label_components(labels, label, connectivity=connectivity)
    if sizes.size - 1 <= k:
        return np.array(labels, copy=True)
    kth = np.sort(sizes[1:])[::-1][int(k) - 1]
    return _change(labels, box, ids, sizes < kth, 0)


def component_probability(
    probabilities: NDArray[np.floating[Any]],
    box: tuple[slice, ...] | None,
    ids: NDArray[np.int64],
    sizes: NDArray[np.int64],
    statistic: Literal["max", "mean"],
) -> NDArray[np.float64]:
    """Per component id, the max or mean of ``probabilities`` (one channel) over its voxels."""
    out = np.zeros(sizes.size, dtype=np.float64)
    if box is None or sizes.size == 1:
        return out
    inside = ids > 0
    where, values = ids[inside], probabilities[box][inside].astype(np.float64)
    if statistic == "max":
        out[:] = -np.inf
        np.maximum.at(out, where, values)
        out[0] = 0.0
    else:
        out = np.bincount(where, weights=values, minlength=sizes.size).astype(np.float64)
        out[1:] /= np.maximum(sizes[1:], 1)
    return out


def drop_improbable_components(
    labels: NDArray[np.integer[Any]],
    probabilities: NDArray[np.floating[Any]],
    *,
    label: int,
    threshold: float,
    statistic: Literal["max", "mean"] = "max",
    to: int = 0,
    connectivity: int | None = None,
) -> NDArray[np.integer[Any]]:
    """Relabel (default: drop) components of ``label`` whose probability is below ``threshold``.

    A component whose max (or mean) probability of ``label`` is below ``threshold`` gets the
    label ``to`` (background by default).

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        probabilities: Fused probabilities ``(C, *labels.shape)``; channel ``label`` is used.
        label: The label (> 0, < C).
        threshold: Components whose statistic is below this change (one equal to it stays).
        statistic: ``max`` (the component's most confident voxel) or ``mean``.
        to: Their new label (0 is background).
        connectivity: 1..ndim in scipy's convention; ``None`` (default) is full connectivity.

    Returns:
        A new array of the same shape and dtype.

    Examples:
        The left component peaks at 0.9 and stays; the right one peaks at 0.4 and goes:

        >>> labels = np.array([[1, 1, 0, 1, 1]], dtype=np.uint8)
        >>> p1 = np.array([[0.9, 0.6, 0.0, 0.4, 0.3]])
        >>> probabilities = np.stack([1 - p1, p1])
        >>> drop_improbable_components(labels, probabilities, label=1, threshold=0.5)
        array([[1, 1, 0, 0, 0]], dtype=uint8)

        By the mean, the left one (0.75) stays at 0.75 and goes above it:

        >>> drop_improbable_components(labels, probabilities, label=1, threshold=0.76,
        ...                            statistic="mean")
        array([[0, 0, 0, 0, 0]], dtype=uint8)
    """
    _check(labels, connectivity, label, to)
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}; got {statistic!r}.")
    if (
        not isinstance(probabilities, np.ndarray)
        or probabilities.shape[1:] != labels.shape
        or probabilities.shape[0] <= label
    ):
        raise ValueError(
            f"probabilities must be (C, {', '.join(map(str, labels.shape))}) with C > {label}; "
            f"got {getattr(probabilities, 'shape', type(probabilities).__name__)}."
        )
    if isinstance(threshold, bool) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}.")
    box, ids, sizes = label_components(labels, label, connectivity=connectivity)
    values = component_probability(probabilities[label], box, ids, sizes, statistic)
    return _change(labels, box, ids, values < threshold, to)
