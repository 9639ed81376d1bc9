"""Per-case, per-label quality measures from an ensemble's own disagreement: pure numpy.

Without a reference, an ensemble still holds a second opinion on every label: each member's
own decision (its argmax). :func:`measure_case` turns the fused probabilities, the fused labels
and the members' argmax maps of one case into one :class:`LabelMeasures` per foreground label:

=====================  ===========================================================================
``member_dice``        each member's Dice against the fused label (both empty: 1)
``member_volumes_ml``  each member's volume of the label, and ``volume_ml`` the fused one
``volume_cv``          the members' volume coefficient of variation, ``std / mean`` (ddof 0;
                       0 when every member is empty)
``empty_members``      members that predict nothing of the label while another member does
``components``         connected components of the fused label (full connectivity, ``cc3d``)
``island_fraction``    the share of the fused label's voxels in its second-largest component
``soft_dice``          soft Dice of the fused probability of the label against the fused label,
                       ``2 sum(p[L]) / (sum(p) + |L|)`` (both empty: 1)
``estimated_dice``     the soft Dice with the members that predict nothing of the label taken
                       as abstaining (:func:`estimated_dice`); 1 for an empty fused label
=====================  ===========================================================================

The estimate is not the soft Dice alone: the fused probability of a label that one member misses
is scaled down everywhere by that member's weight, so the soft Dice then says ~0.5 for a label
whose true Dice is 0.9 (the demo's 2D model that never predicts the RV). That member is flagged
anyway; the estimate leaves its weight out. The soft Dice of an empty fused label is 0 whatever
the truth; its true Dice is 1 or 0 with nothing between, and the fused probability never
reached the decision, so the estimate says 1 and leaves the doubt to the flags (a member that
predicts the label is always flagged; a calibrated spec's CV volume range flags a volume of 0).

:func:`disagreement_map` and :func:`entropy_map` give the voxel maps of ``--qc-maps``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "LabelMeasures",
    "component_sizes",
    "confusion_counts",
    "disagreement_map",
    "entropy_map",
    "estimated_dice",
    "measure_case",
    "soft_dice",
    "volume_cv",
]


#: Voxels per chunk of :func:`confusion_counts` (32 MiB of int64 codes).
_CHUNK = 1 << 22


@dataclass(frozen=True)
class LabelMeasures:
    """The measures of one label of one case (see the module docstring).

    Attributes:
        label: The label value.
        volume_ml: Volume of the fused label in ml.
        member_volumes_ml: Volume of the label in each member's argmax, in ml.
        member_dice: Each member's Dice against the fused label.
        volume_cv: The members' volume coefficient of variation.
        empty_members: Indices of members that are empty while another member is not.
        components: Connected components of the fused label.
        island_fraction: Share of the fused label's voxels in its second-largest component.
        soft_dice: Soft Dice of the fused probabilities against the fused label.
        estimated_dice: See :func:`estimated_dice`.
    """

    label: int
    volume_ml: float
    member_volumes_ml: tuple[float, ...]
    member_dice: tuple[float, ...]
    volume_cv: float
    empty_members: tuple[int, ...]
    components: int
    island_fraction: float
    soft_dice: float
    estimated_dice: float


def confusion_counts(
    labels: NDArray[np.integer[Any]], other: NDArray[np.integer[Any]], *, num_classes: int
) -> NDArray[np.int64]:
    """Voxel counts ``counts[a, b]`` of ``labels == a`` and ``other == b``, in one pass.

    Examples:
        >>> confusion_counts(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), num_classes=3)
        array([[1, 0, 0],
               [0, 1, 1],
               [0, 0, 1]])
    """
    size = num_classes * num_classes
    counts = np.zeros(size, dtype=np.int64)
    left, right = labels.reshape(-1), other.reshape(-1)
    for start in range(0, left.size, _CHUNK):  # bounded temporaries on large volumes
        codes = left[start : start + _CHUNK].astype(np.int64) * num_classes
        codes += right[start : start + _CHUNK]
        counts += np.bincount(codes, minlength=size)[:size]
    return counts.reshape(num_classes, num_classes)


def volume_cv(volumes: Sequence[float]) -> float:
    """The coefficient of variation ``std / mean`` (ddof 0) of ``volumes``; 0 if all are 0.

    Examples:
        >>> volume_cv([10.0, 10.0]), volume_cv([0.0, 0.0]), volume_cv([0.0, 20.0])
        (0.0, 0.0, 1.0)
    """
    array = np.asarray(volumes, dtype=np.float64)
    if not array.size or np.all(array == array[0]):  # exactly 0, not a rounding residue
        return 0.0
    mean = float(array.mean())
    return 0.0 if mean <= 0 else float(array.std() / mean)


def soft_dice(probability: NDArray[np.floating[Any]], mask: NDArray[np.bool_]) -> float:
    """Soft Dice ``2 sum(p[mask]) / (sum(p) + |mask|)`` of a probability map against a mask.

    It estimates the Dice a reference would give the mask if the probabilities were calibrated:
    confident, agreeing members give values near 1, hesitant ones lower values.

    Examples:
        >>> soft_dice(np.array([1.0, 1.0, 0.0]), np.array([True, True, False]))
        1.0
        >>> soft_dice(np.array([0.5, 0.5, 0.0]), np.array([True, True, False]))
        0.6666666666666666
        >>> soft_dice(np.zeros(3), np.zeros(3, dtype=bool))  # nothing anywhere: agreement
        1.0
    """
    inside = float(probability[mask].sum(dtype=np.float64))
    total = float(probability.sum(dtype=np.float64)) + int(np.count_nonzero(mask))
    return 1.0 if total <= 0 else 2.0 * inside / total


def component_sizes(labels: NDArray[np.integer[Any]]) -> dict[int, NDArray[np.int64]]:
    """Per non-zero value of ``labels``, the voxel counts of its components, largest first.

    One pass for every label (``cc3d``'s multi-label mode); components are connected with full
    connectivity: 8 neighbours in 2D, 26 in 3D.

    Examples:
        >>> sizes = component_sizes(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 2], [1, 1, 0]]))
        >>> {k: v.tolist() for k, v in sizes.items()}
        {1: [2, 2], 2: [1]}
        >>> component_sizes(np.zeros((2, 2, 2), dtype=np.uint8))
        {}
    """
    import cc3d

    volume = labels.reshape((1,) * (3 - labels.ndim) + labels.shape) if labels.ndim < 3 else labels
    if not volume.any():
        return {}
    if sum(size > 1 for size in volume.shape) <= 1:  # cc3d 3.x fails on some 1-D lines
        from scipy import ndimage  # only here: its import costs more than a case's QC

        components: NDArray[Any] = np.zeros(volume.shape, dtype=np.int64)
        count = 0
        for value in np.unique(volume[volume != 0]):
            found, n = ndimage.label(volume == value, structure=np.ones((3, 3, 3)))
            components[found > 0] = found[found > 0] + count
            count += n
    else:
        components = cc3d.connected_components(np.ascontiguousarray(volume), connectivity=26)
    flat = components.reshape(-1)
    sizes = np.bincount(flat).astype(np.int64)
    owner = np.zeros(sizes.size, dtype=np.int64)
    owner[flat] = volume.reshape(-1)
    return {
        int(value): np.sort(sizes[1:][owner[1:] == value])[::-1]
        for value in np.unique(owner[1:])
        if value != 0
    }


def estimated_dice(
    probability: NDArray[np.floating[Any]],
    mask: NDArray[np.bool_],
    member_sizes: Sequence[int],
    weights: Sequence[float] | None = None,
) -> float:
    """Estimated Dice of a fused label from its probability, members that miss it abstaining.

    For a non-empty ``mask``: the soft Dice (:func:`soft_dice`) of ``p / s`` (clipped at 1),
    where ``s`` is the summed normalised weight of the members that predict the label at all,
    since those that predict none of it only scale its probability down. For an empty
    ``mask``: 1 (see the module docstring: the flags carry the doubt).

    Args:
        probability: The fused probability of the label.
        mask: The fused label.
        member_sizes: Each member's voxel count of the label (its own argmax).
        weights: Each member's normalised weight for the label (summing to 1); ``None``: equal.

    Examples:
        >>> p = np.array([0.45, 0.5, 0.05, 0.0])  # member 1 misses the label: p is halved
        >>> mask = np.array([True, True, False, False])
        >>> round(soft_dice(p, mask), 3), round(estimated_dice(p, mask, [2, 0]), 3)
        (0.633, 0.95)
        >>> estimated_dice(p, np.zeros(4, dtype=bool), [2, 0])  # absent: the flags judge
        1.0
    """
    count = len(member_sizes)
    if not mask.any():
        return 1.0
    shares = [1.0 / count] * count if weights is None else [float(w) for w in weights]
    scale = sum(w for w, size in zip(shares, member_sizes, strict=True) if size > 0)
    if 0 < scale < 1:
        probability = np.minimum(probability / scale, 1.0)
    return soft_dice(probability, mask)


def _dice(intersection: int, size_a: int, size_b: int) -> float:
    total = size_a + size_b
    return 1.0 if total == 0 else 2.0 * intersection / total


def measure_case(
    probabilities: NDArray[np.floating[Any]],
    labels: NDArray[np.integer[Any]],
    member_labels: Sequence[NDArray[np.integer[Any]]],
    *,
    voxel_volume_ml: float = 0.001,
    label_ids: Sequence[int] | None = None,
    weights: NDArray[np.floating[Any]] | None = None,
) -> tuple[LabelMeasures, ...]:
    """The quality measures of every foreground label of one case.

    Args:
        probabilities: Fused softmax probabilities ``(C, ...)``. Not modified.
        labels: The fused labels, shape ``probabilities.shape[1:]`` (after any decision rule).
        member_labels: Each member's own argmax map, same shape as ``labels``.
        voxel_volume_ml: Volume of one voxel in ml (``prod(spacing) / 1000`` in mm).
        label_ids: The labels to measure (default ``1 .. C-1``).
        weights: The fusion's normalised ``(M, C)`` weights (each class column summing to 1),
            for :func:`estimated_dice`; ``None``: equal weights.

    Returns:
        One :class:`LabelMeasures` per label, in ``label_ids`` order.

    Raises:
        ValueError: For no member, or shapes that do not match.

    Examples:
        >>> p = np.array([[0.9, 0.2, 0.1, 0.6], [0.1, 0.8, 0.9, 0.4]])
        >>> fused = p.argmax(axis=0)
        >>> (m,) = measure_case(p, fused, [np.array([0, 1, 1, 0]), np.array([0, 0, 1, 1])])
        >>> m.member_dice, m.volume_cv, m.components, round(m.soft_dice, 3)
        ((1.0, 0.5), 0.0, 1, 0.81)
    """
    num_classes = int(probabilities.shape[0])
    spatial = tuple(probabilities.shape[1:])
    if not member_labels:
        raise ValueError("member_labels must hold at least one member's argmax map; got none.")
    for index, member in enumerate((labels, *member_labels)):
        if tuple(member.shape) != spatial:
            name = "labels" if index == 0 else f"member_labels[{index - 1}]"
            raise ValueError(
                f"{name} must have the spatial shape of probabilities, {spatial}; "
                f"got {tuple(member.shape)}."
            )
    ids = list(range(1, num_classes)) if label_ids is None else [int(v) for v in label_ids]
    if weights is not None and np.shape(weights) != (len(member_labels), num_classes):
        raise ValueError(
            f"weights must have shape ({len(member_labels)}, {num_classes}) (members, classes); "
            f"got {np.shape(weights)}."
        )
    confusions = [confusion_counts(labels, m, num_classes=num_classes) for m in member_labels]
    fused_sizes = confusions[0].sum(axis=1)
    all_components = component_sizes(labels)
    results = []
    for label in ids:
        sizes = [int(c[:, label].sum()) for c in confusions]
        dice = tuple(
            _dice(int(c[label, label]), int(fused_sizes[label]), size)
            for c, size in zip(confusions, sizes, strict=True)
        )
        volumes = tuple(size * voxel_volume_ml for size in sizes)
        empty = tuple(m for m, size in enumerate(sizes) if size == 0) if any(sizes) else ()
        mask = labels == label
        components = all_components.get(label, np.zeros(0, dtype=np.int64))
        soft = soft_dice(probabilities[label], mask)
        results.append(
            LabelMeasures(
                label=label,
                volume_ml=int(fused_sizes[label]) * voxel_volume_ml,
                member_volumes_ml=volumes,
                member_dice=dice,
                volume_cv=volume_cv(volumes),
                empty_members=empty,
                components=len(components),
                island_fraction=float(components[1] / components.sum())
                if len(components) > 1
                else 0.0,
                soft_dice=soft,
                estimated_dice=estimated_dice(
                    probabilities[label],
                    mask,
                    sizes,
                    None if weights is None else [float(w) for w in weights[:, label]],
                ),
            )
        )
    return tuple(results)


def disagreement_map(
    labels: NDArray[np.integer[Any]], member_labels: Sequence[NDArray[np.integer[Any]]]
) -> NDArray[np.uint8]:
    """Per voxel, the number of members whose argmax differs from the fused label (uint8).

    Examples:
        >>> disagreement_map(np.array([0, 1, 2]), [np.array([0, 1, 1]), np.array([1, 1, 0])])
        array([1, 0, 2], dtype=uint8)
    """
    count = np.zeros(labels.shape, dtype=np.uint8)
    for member in member_labels:
        count += member != labels
    return count


def entropy_map(probabilities: NDArray[np.floating[Any]]) -> NDArray[np.uint8]:
    """The entropy of the fused probabilities over classes, scaled to 0..255 (uint8).

    255 is the entropy of a uniform distribution over the ``C`` classes (``log C``).

    Examples:
        >>> entropy_map(np.array([[1.0, 0.5, 0.25], [0.0, 0.5, 0.75]]))
        array([  0, 255, 207], dtype=uint8)
    """
    num_classes = int(probabilities.shape[0])
    if num_classes < 2:
        return np.zeros(probabilities.shape[1:], dtype=np.uint8)
    entropy = np.zeros(probabilities.shape[1:], dtype=np.float64)
    for channel in probabilities:
        p = np.asarray(channel, dtype=np.float64)
        positive = p > 0
        entropy[positive] -= p[positive] * np.log(p[positive])
    scaled = np.clip(entropy / math.log(num_classes), 0.0, 1.0) * 255.0
    return np.rint(scaled).astype(np.uint8)
