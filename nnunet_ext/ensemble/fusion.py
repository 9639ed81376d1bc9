"""Fuse probability maps of several models: pure array maths, no files.

The fused probability of class ``c`` is ``sum_m w[m, c] * p_m[c] / sum_m w[m, c]``. When all members
share the same weight for a class, the arithmetic mirrors ``nnUNetv2_ensemble`` exactly (float32
running sum in member order, then ``/= M``), so equal-weight results are bit-identical to it,
ties included. Other classes are accumulated in float32 as
``sum_m (w[m, c] / sum_m w[m, c]) * p_m[c]``.

:class:`FusionAccumulator` does the same work on flat chunks of each member, so a folder ensemble
can stream decompressed data into one accumulator without ever holding a whole member array; it
can also keep the argmax of chosen members as uint8 maps (for ``from`` rules).

:func:`probabilities_to_labels` turns (fused) probabilities into labels as nnU-Net's LabelManager
does; per-label rules (:mod:`nnunet_ext.ensemble.rules`) change that decision for softmax models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from nnunet_ext.ensemble.rules import LabelRules, apply_label_rules, labels_dtype

__all__ = [
    "FusionAccumulator",
    "fuse_probabilities",
    "fuse_to_labels",
    "normalize_weights",
    "probabilities_to_labels",
]


def normalize_weights(
    weights: ArrayLike | None, *, num_members: int, num_classes: int
) -> NDArray[np.float64]:
    """Check ``weights`` and return them as a float64 ``(M, C)`` matrix whose columns sum to 1.

    Args:
        weights: ``None`` (equal weights), one weight per member ``(M,)``, or one weight per member
            and class ``(M, C)``. Non-negative and finite; every class needs a positive weight.
        num_members: ``M``, the number of members.
        num_classes: ``C``, the number of channels of each member.

    Returns:
        The per-class normalised weights, shape ``(M, C)``.

    Raises:
        ValueError: For a wrong shape, negative or non-finite weights, or a class whose weights
            are all zero.

    Examples:
        >>> normalize_weights([1, 3], num_members=2, num_classes=2)
        array([[0.25, 0.25],
               [0.75, 0.75]])
        >>> normalize_weights([[1, 0], [1, 1]], num_members=2, num_classes=2)
        array([[0.5, 0. ],
               [0.5, 1. ]])
        >>> normalize_weights([1, -1], num_members=2, num_classes=2)
        Traceback (most recent call last):
        ...
        ValueError: weights must be >= 0; got -1 for member 1, class 0.
    """
    if num_members < 1:
        raise ValueError(f"probabilities must hold at least one member; got {num_members}.")
    if weights is None:
        matrix = np.ones((num_members, num_classes), dtype=np.float64)
    else:
        array = np.asarray(weights, dtype=np.float64)
        if array.shape == (num_members,):
            matrix = np.repeat(array[:, None], num_classes, axis=1)
        elif array.shape == (num_members, num_classes):
            matrix = array.copy()
        else:
            raise ValueError(
                f"weights must have shape ({num_members},) (one weight per member) or "
                f"({num_members}, {num_classes}) (per member and class); got shape {array.shape}."
            )
    if not np.all(np.isfinite(matrix)):
        raise ValueError("weights must be finite; got NaN or Inf.")
    if np.any(matrix < 0):
        member, cls = (int(i) for i in np.argwhere(matrix < 0)[0])
        raise ValueError(
            f"weights must be >= 0; got {matrix[member, cls]:g} for member {member}, class {cls}."
        )
    totals = matrix.sum(axis=0)
    if np.any(totals <= 0):
        zero = [int(c) for c in np.flatnonzero(totals <= 0)]
        raise ValueError(
            f"weights must give every class a positive weight; all weights are 0 for class(es) "
            f"{zero}. Give at least one member a weight > 0 for each class."
        )
    normalized: NDArray[np.float64] = matrix / totals
    return normalized


def _normalized(
    weights: ArrayLike | None, num_members: int, num_classes: int
) -> NDArray[np.float64]:
    """``weights`` checked to be normalised ``(M, C)`` (``None``: equal weights)."""
    if weights is None:
        return normalize_weights(None, num_members=num_members, num_classes=num_classes)
    matrix = np.asarray(weights, dtype=np.float64)
    if matrix.shape != (num_members, num_classes):
        raise ValueError(
            f"weights must be the normalised ({num_members}, {num_classes}) matrix of "
            f"normalize_weights; got shape {matrix.shape}."
        )
    totals = matrix.sum(axis=0)
    if not (np.all(np.isfinite(matrix)) and np.all(matrix >= 0) and np.allclose(totals, 1.0)):
        raise ValueError(
            "weights must be normalised (finite, >= 0, each class column summing to 1); "
            "pass them through normalize_weights first."
        )
    return matrix


class FusionAccumulator:
    """Weighted mean of ``M`` members, fed as flat C-order chunks in member order.

    Feed member 0 completely, then member 1, and so on (chunks of one member in any order).
    Holds one accumulator of ``shape`` in ``dtype`` and nothing else.

    Args:
        shape: Shape ``(C, ...)`` of each member.
        weights: Normalised ``(M, C)`` weights, as :func:`normalize_weights` returns them (the
            caller normalises once, where it checks them); ``None``: equal weights.
        num_members: ``M``.
        dtype: Accumulator dtype; float32 mirrors ``nnUNetv2_ensemble``.
        argmax_members: Members whose own argmax (label map) to keep while streaming, for
            ``from`` rules: one uint8 map each (``uint16`` beyond 256 classes) and one float32
            running maximum shared by them, never a member's probabilities.
        count_above: Also count, per member and class, the values above this class's entry
            (region models: each member's own region volume at the region's threshold,
            :meth:`member_counts`); ``None``: no counts.

    Examples:
        >>> acc = FusionAccumulator((2, 2), weights=None, num_members=2, argmax_members=[1])
        >>> acc.add(0, 0, np.array([1.0, 0.0, 0.0, 1.0]))
        >>> acc.add(1, 0, np.array([0.0, 1.0, 1.0, 0.0]))
        >>> acc.result()
        array([[0.5, 0.5],
               [0.5, 0.5]], dtype=float32)
        >>> acc.member_labels()
        {1: array([1, 0], dtype=uint8)}
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        weights: ArrayLike | None,
        num_members: int,
        dtype: DTypeLike = np.float32,
        argmax_members: Sequence[int] = (),
        count_above: Sequence[float] | None = None,
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) < 1:
            raise ValueError("probabilities must have a channel axis; got a 0-d array.")
        self.num_members = int(num_members)
        self.num_classes = self.shape[0]
        self.class_size = int(np.prod(self.shape[1:], dtype=np.int64))
        self.weights = _normalized(weights, self.num_members, self.num_classes)
        # a class whose members all carry the same weight is a plain mean: nnU-Net's arithmetic
        self.is_equal = np.all(self.weights == self.weights[0:1], axis=0)
        self.dtype = np.dtype(dtype)
        self._data = np.empty(self.shape, dtype=self.dtype)
        self._flat = self._data.reshape(-1)
        self._cast = {
            (m, c): self.dtype.type(self.weights[m, c])
            for m in range(self.num_members)
            for c in range(self.num_classes)
        }
        self._done = False
        self._tracked = sorted({int(m) for m in argmax_members})
        for member in self._tracked:
            if not 0 <= member < self.num_members:
                raise ValueError(
                    f"argmax_members must be member indices 0..{self.num_members - 1}; "
                    f"got {member}."
                )
        label_dtype = labels_dtype(self.num_classes - 1)
        self._labels = {m: np.zeros(self.class_size, dtype=label_dtype) for m in self._tracked}
        self._best = np.empty(self.class_size if self._tracked else 0, dtype=np.float32)
        self._best_owner = -1
        self._count_above = None if count_above is None else [float(t) for t in count_above]
        self._counts = np.zeros((self.num_members, self.num_classes), dtype=np.int64)
        self._highest: dict[int, int] = {}  # per member, the highest class tracked so far

    def _track(self, member: int, cls: int, start: int, piece: NDArray[Any]) -> None:
        """Update ``member``'s running argmax with class ``cls`` at spatial ``start``."""
        if member != self._best_owner:
            self._best.fill(-np.inf)
            self._best_owner = member
        best = self._best[start : start + piece.size]
        labels = self._labels[member][start : start + piece.size]
        # the first maximum wins, as np.argmax, whatever order the chunks come in
        take = piece > best
        if cls < self._highest.get(member, -1):  # a lower class after a higher: ties matter
            take |= (piece == best) & (labels > cls)
        self._highest[member] = max(cls, self._highest.get(member, -1))
        np.copyto(best, piece, where=take, casting="unsafe")
        np.copyto(labels, cls, where=take, casting="unsafe")

    def member_labels(self) -> dict[int, NDArray[np.unsignedinteger[Any]]]:
        """The argmax label map (spatial shape) of each member in ``argmax_members``."""
        spatial = self.shape[1:]
        return {m: labels.reshape(spatial) for m, labels in self._labels.items()}

    def member_counts(self) -> NDArray[np.int64]:
        """``(M, C)`` counts of values above ``count_above`` (zeros without it)."""
        counts: NDArray[np.int64] = self._counts.copy()
        return counts

    def add(self, member: int, offset: int, values: NDArray[Any]) -> None:
        """Add the flat chunk ``values`` of member ``member`` starting at flat index ``offset``.

        Args:
            member: Index of the member, ``0 <= member < M``.
            offset: Flat C-order index of ``values[0]`` in the member array.
            values: 1-D chunk of the member's probabilities (any float dtype).
        """
        end = offset + values.size
        if self.class_size == 0:
            return
        position = offset
        while position < end:
            cls = position // self.class_size
            stop = min(end, (cls + 1) * self.class_size)
            piece = values[position - offset : stop - offset]
            if member in self._labels:
                self._track(member, cls, position - cls * self.class_size, piece)
            if self._count_above is not None:
                limit = piece.dtype.type(self._count_above[cls])
                self._counts[member, cls] += int(np.count_nonzero(piece > limit))
            target = self._flat[position:stop]
            if self.is_equal[cls]:
                if member == 0:
                    target[...] = piece
                else:
                    target += piece
            else:
                weight = self._cast[(member, cls)]
                if member == 0:
                    np.multiply(piece, weight, out=target, casting="unsafe")
                else:
                    target += piece * weight
            position = stop

    def add_array(self, member: int, probabilities: NDArray[Any]) -> None:
        """Add a whole member array of shape ``shape``."""
        if tuple(probabilities.shape) != self.shape:
            raise ValueError(
                f"probabilities[{member}] must have shape {self.shape}; got {probabilities.shape}."
            )
        self.add(member, 0, np.ascontiguousarray(probabilities).reshape(-1))

    def result(self) -> NDArray[Any]:
        """Finish (divide the equal-weight classes by ``M``) and return the fused array."""
        if not self._done:
            if np.all(self.is_equal):
                self._data /= self.num_members  # exactly nnUNetv2_ensemble's `avg /= len(files)`
            else:
                for cls in np.flatnonzero(self.is_equal):
                    self._data[cls] /= self.num_members
            self._done = True
        return self._data


def fuse_probabilities(
    probabilities: Sequence[NDArray[Any]],
    weights: ArrayLike | None = None,
    *,
    dtype: DTypeLike = np.float32,
) -> NDArray[Any]:
    """Fuse member probability maps into their (per-class) weighted mean.

    Args:
        probabilities: ``M`` arrays of identical shape ``(C, ...)`` (softmax or sigmoid outputs,
            as in nnU-Net's ``CASE.npz``). Not modified.
        weights: ``None`` for equal weights, shape ``(M,)`` for one weight per member or
            ``(M, C)`` per member and class. Weights need not sum to 1; they are normalised
            per class.
        dtype: Accumulator and result dtype. ``float32`` (default) is what ``nnUNetv2_ensemble``
            uses; with equal weights the result is bit-identical to it. ``float64`` gives the
            reference weighted mean.

    Returns:
        The fused array, shape ``(C, ...)``, in ``dtype``.

    Raises:
        ValueError: For no members, differing shapes, or invalid ``weights``.

    Examples:
        >>> a = np.array([[1.0, 0.25], [0.0, 0.75]], dtype=np.float32)
        >>> b = np.array([[0.5, 0.75], [0.5, 0.25]], dtype=np.float32)
        >>> fuse_probabilities([a, b])
        array([[0.75, 0.5 ],
               [0.25, 0.5 ]], dtype=float32)
        >>> fuse_probabilities([a, b], [1, 3], dtype=np.float64)
        array([[0.625, 0.625],
               [0.375, 0.375]])
    """
    if len(probabilities) == 0:
        raise ValueError("probabilities must hold at least one member array; got none.")
    shape = tuple(np.shape(probabilities[0]))
    for index, member in enumerate(probabilities):
        if tuple(member.shape) != shape:
            raise ValueError(
                f"probabilities[{index}] must have the shape of probabilities[0], {shape}; "
                f"got {tuple(member.shape)}."
            )
    normalized = normalize_weights(
        weights, num_members=len(probabilities), num_classes=shape[0] if shape else 0
    )
    accumulator = FusionAccumulator(
        shape, weights=normalized, num_members=len(probabilities), dtype=dtype
    )
    for index, member in enumerate(probabilities):
        accumulator.add_array(index, member)
    return accumulator.result()


def probabilities_to_labels(
    probabilities: NDArray[Any],
    *,
    regions_class_order: Sequence[int] | None = None,
    rules: LabelRules | None = None,
    member_labels: Mapping[int, NDArray[Any]] | Sequence[NDArray[Any]] | None = None,
) -> NDArray[np.unsignedinteger[Any]]:
    """Convert (fused) probabilities to a label map the way nnU-Net's LabelManager does.

    Softmax (label) models: ``argmax`` over the channel axis; the channel index is the label value
    and ties go to the lower label. Region (sigmoid) models: start from 0 and, for each channel
    ``i`` in order, set ``regions_class_order[i]`` where ``p[i] > 0.5`` (later regions win;
    ``rules.thresholds[i]`` instead of 0.5 where given, compared in the probabilities' dtype).
    With ``rules`` (softmax), :func:`~nnunet_ext.ensemble.rules.apply_label_rules` decides
    instead.

    Args:
        probabilities: Array ``(C, ...)``. Not modified.
        regions_class_order: For region-based models, the label of each channel (``dataset.json``).
        rules: Per-label rules (``scale``, ``from``; region models: ``thresholds`` only);
            ``None`` or no rules: plain argmax (0.5 for regions).
        member_labels: Each member's argmax map, for ``from`` rules (see
            :func:`~nnunet_ext.ensemble.rules.apply_label_rules`).

    Returns:
        ``uint8`` labels of shape ``probabilities.shape[1:]`` (``uint16`` if a label exceeds 255).

    Raises:
        ValueError: If ``regions_class_order`` does not have one entry per channel, or label
            rules are given for region-based probabilities (thresholds for softmax ones).

    Examples:
        >>> p = np.array([[0.5, 0.2, 0.4], [0.5, 0.8, 0.6]], dtype=np.float32)
        >>> probabilities_to_labels(p)  # the tie in the first voxel goes to label 0
        array([0, 1, 1], dtype=uint8)
        >>> probabilities_to_labels(p, rules=LabelRules.build(2, scale={0: 1.6}))
        array([0, 1, 0], dtype=uint8)
        >>> r = np.array([[0.9, 0.9, 0.1], [0.2, 0.7, 0.4]])
        >>> probabilities_to_labels(r, regions_class_order=[1, 2])
        array([1, 2, 0], dtype=uint8)
        >>> probabilities_to_labels(
        ...     r, regions_class_order=[1, 2], rules=LabelRules.build(2, thresholds={1: 0.35}))
        array([1, 2, 2], dtype=uint8)
    """
    num_channels = probabilities.shape[0]
    spatial = probabilities.shape[1:]
    if regions_class_order is not None:
        rules = rules or LabelRules()
        if rules.scale is not None or rules.take:
            raise ValueError(
                "rules (scale, from) apply to softmax (label) probabilities; got region-based "
                "ones (regions_class_order)."
            )
        order = [int(v) for v in regions_class_order]
        if len(order) != num_channels:
            raise ValueError(
                f"regions_class_order must have one label per channel ({num_channels}); "
                f"got {len(order)}: {order}."
            )
        thresholds = rules.thresholds or (0.5,) * num_channels
        if len(thresholds) != num_channels:
            raise ValueError(
                f"thresholds must have one value per region channel ({num_channels}); "
                f"got {len(thresholds)}."
            )
        out_dtype = labels_dtype(max(order, default=0))
        labels = np.zeros(spatial, dtype=out_dtype)
        cast = probabilities.dtype.type
        for channel, value in enumerate(order):
            labels[probabilities[channel] > cast(thresholds[channel])] = value
        return labels
    return apply_label_rules(probabilities, rules or LabelRules(), member_labels)


def fuse_to_labels(
    probabilities: Sequence[NDArray[Any]],
    weights: ArrayLike | None = None,
    rules: LabelRules | None = None,
) -> NDArray[np.unsignedinteger[Any]]:
    """Fuse softmax members and decide labels under ``rules``: the whole ensemble on arrays.

    :func:`fuse_probabilities`, then :func:`~nnunet_ext.ensemble.rules.apply_label_rules` with
    the argmax of each member that a ``from`` rule names.

    Examples:
        >>> a = np.array([[0.6, 0.9], [0.4, 0.1]], dtype=np.float32)  # member 0: [0, 0]
        >>> b = np.array([[0.9, 0.3], [0.1, 0.7]], dtype=np.float32)  # member 1: [0, 1]
        >>> fuse_to_labels([a, b])
        array([0, 0], dtype=uint8)
        >>> fuse_to_labels([a, b], rules=LabelRules.build(2, take=[(1, 1)]))
        array([0, 1], dtype=uint8)
    """
    fused = fuse_probabilities(probabilities, weights)
    rules = rules or LabelRules()
    maps = {m: probabilities_to_labels(probabilities[m]) for m in rules.members}
    return apply_label_rules(fused, rules, maps)
