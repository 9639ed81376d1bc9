"""Fill holes in label maps, changing only background voxels.

The rule (one pass, all labels at once):

* A *hole* is a connected component of background (0), with face connectivity (as
  ``scipy.ndimage.binary_fill_holes`` treats background), that does not touch the image border.
* Its *surrounding label* is the label with the most distinct face-neighbour voxels of the hole;
  ties go to the smaller label value.
* The hole is filled with its surrounding label only if that label is in ``label_ids``;
  otherwise it stays background.

Only background voxels change, so a label nested inside another (LV inside myocardium) is never
overwritten. A background pocket inside the LV becomes LV when it touches only LV; one that also
touches the myocardium takes whichever has more distinct neighbour voxels. Holes are found
with ``fill_voids`` (scan-line flood fill) and labelled with ``cc3d``; the result equals a
``scipy.ndimage`` reference (``tests/postprocess/test_holes.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.postprocess.components import check_labels_array, foreground_bbox

__all__ = ["fill_holes", "find_holes"]


def find_holes(labels: NDArray[np.integer[Any]]) -> NDArray[np.bool_]:
    """Return the background voxels not face-connected to the image border.

    Args:
        labels: Integer label map, 2D or 3D. Not modified.

    Returns:
        Boolean mask of hole voxels, same shape as ``labels``.

    Examples:
        >>> labels = np.array([[1, 1, 1, 0],
        ...                    [1, 0, 1, 0],
        ...                    [1, 1, 1, 0]], dtype=np.uint8)
        >>> find_holes(labels).astype(int)
        array([[0, 0, 0, 0],
               [0, 1, 0, 0],
               [0, 0, 0, 0]])
    """
    check_labels_array(labels)
    holes = np.zeros(labels.shape, dtype=bool)
    box = foreground_bbox(labels)
    if box is None:
        return holes
    # Background on the border of the foreground bounding box touches the background outside it,
    # which reaches the image border; so filling inside the crop is exact. The crop is padded with
    # one background voxel per side: fill_voids 2.1 fills a lone background voxel on an image edge
    # whose face neighbours are all foreground, although it touches the border.
    import fill_voids

    foreground = np.pad(labels[box] != 0, 1)
    filled = fill_voids.fill(foreground, in_place=False)
    inner = tuple(slice(1, -1) for _ in range(labels.ndim))
    holes[box] = (filled & ~foreground)[inner]
    return holes


def fill_holes(
    labels: NDArray[np.integer[Any]],
    *,
    label_ids: Iterable[int],
) -> NDArray[np.integer[Any]]:
    """Fill each hole with its surrounding label, if that label is in ``label_ids``.

    See the module docstring for the exact rule. Filling is idempotent and never changes a
    non-zero voxel.

    Args:
        labels: Integer label map, 2D or 3D. Not modified.
        label_ids: Labels whose holes may be filled (> 0).

    Returns:
        A new array of the same shape and dtype.

    Raises:
        TypeError: If ``labels`` is not an integer array.
        ValueError: If a label id is <= 0.

    Examples:
        A pocket touching only label 2 (which sits inside label 1) becomes 2, never 1:

        >>> labels = np.array([[1, 1, 1, 1, 1],
        ...                    [1, 2, 2, 2, 1],
        ...                    [1, 2, 0, 2, 1],
        ...                    [1, 2, 2, 2, 1],
        ...                    [1, 1, 1, 1, 1]], dtype=np.uint8)
        >>> fill_holes(labels, label_ids=[1, 2])[2]
        array([1, 2, 2, 2, 1], dtype=uint8)
        >>> fill_holes(labels, label_ids=[1])[2]
        array([1, 2, 0, 2, 1], dtype=uint8)

        A hole bordered by 2 voxels of label 1 and 2 of label 3 (a tie) takes label 1:

        >>> tie = np.array([[0, 1, 0],
        ...                 [1, 0, 3],
        ...                 [0, 3, 0]], dtype=np.uint8)
        >>> int(fill_holes(tie, label_ids=[1, 3])[1, 1])
        1
    """
    ids = sorted({int(v) for v in label_ids})
    if any(v <= 0 for v in ids):
        raise ValueError(f"label_ids must be foreground labels (> 0); got {ids}.")
    holes = find_holes(labels)
    out: NDArray[np.integer[Any]] = np.array(labels, copy=True)
    if not ids or not holes.any():
        return out
    import cc3d

    # crop to the holes plus one voxel: holes never touch the border, so the ring exists
    box = foreground_bbox(holes.view(np.uint8))
    if box is None:  # pragma: no cover - holes.any() was checked above
        return out
    ring = tuple(slice(s.start - 1, s.stop + 1) for s in box)
    crop_holes = np.ascontiguousarray(holes[ring])
    crop_labels = labels[ring]
    label_components: Any = cc3d.connected_components
    hole_ids = label_components(
        crop_holes.view(np.uint8), connectivity=4 if labels.ndim == 2 else 6
    ).astype(np.int64)
    flat_ids = hole_ids.ravel()
    flat_labels = crop_labels.ravel()
    holes_of_pair, voxels_of_pair = _hole_neighbour_pairs(hole_ids)
    # distinct (hole, neighbour voxel) pairs, then count neighbour labels per hole
    unique_pairs = np.unique(holes_of_pair * flat_ids.size + voxels_of_pair)
    pair_hole = unique_pairs // flat_ids.size
    pair_label = flat_labels[unique_pairs % flat_ids.size].astype(np.int64)
    span = int(pair_label.max()) + 1
    keys, counts = np.unique(pair_hole * span + pair_label, return_counts=True)
    key_hole, key_label = keys // span, keys % span
    # order by hole, then most neighbours, then smallest label; the first row per hole wins
    order = np.lexsort((key_label, -counts, key_hole))
    key_hole, key_label = key_hole[order], key_label[order]
    first = np.ones(key_hole.size, dtype=bool)
    first[1:] = key_hole[1:] != key_hole[:-1]
    fill_value = np.zeros(int(flat_ids.max()) + 1, dtype=np.int64)
    winners = key_label[first]
    fill_value[key_hole[first]] = np.where(np.isin(winners, ids), winners, 0)
    target = out[ring]
    target[crop_holes] = fill_value[hole_ids[crop_holes]].astype(out.dtype)
    return out


def _hole_neighbour_pairs(
    hole_ids: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each hole voxel's face neighbours outside every hole: (hole id, flat voxel index) pairs."""
    flat_ids = hole_ids.ravel()
    index = np.arange(flat_ids.size, dtype=np.int64).reshape(hole_ids.shape)
    pair_holes: list[NDArray[np.int64]] = []
    pair_voxels: list[NDArray[np.int64]] = []
    for axis in range(hole_ids.ndim):
        for step in (1, -1):
            here = [slice(None)] * hole_ids.ndim
            there = [slice(None)] * hole_ids.ndim
            if step == 1:
                here[axis], there[axis] = slice(0, -1), slice(1, None)
            else:
                here[axis], there[axis] = slice(1, None), slice(0, -1)
            src = hole_ids[tuple(here)]
            dst = index[tuple(there)]
            edge = (src > 0) & (flat_ids[dst] == 0)
            pair_holes.append(src[edge])
            pair_voxels.append(dst[edge])
    return np.concatenate(pair_holes), np.concatenate(pair_voxels)
