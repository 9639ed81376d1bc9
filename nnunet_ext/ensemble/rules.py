"""Per-label decision rules: how fused probabilities become labels.

:class:`LabelRules` are the spec's ``rules`` resolved to class and member indices
(:func:`nnunet_ext.ensemble.channels.label_rules`); :func:`apply_label_rules` applies them
(:func:`~nnunet_ext.ensemble.fusion.probabilities_to_labels` calls it): a decision ``scale`` per
label (``argmax_c scale[c] * fused[c]``) and ``from`` rules (label ``L`` is exactly where member
``M``'s own argmax is ``L``). Without rules nothing changes: the labels are the plain argmax,
identical to ``nnUNetv2_ensemble`` with equal weights. Region (sigmoid) models take per-region
decision ``thresholds`` instead (:func:`~nnunet_ext.ensemble.fusion.probabilities_to_labels`
applies them). Pure array maths, no files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io.labels import MAX_UINT8_LABEL

__all__ = ["LabelRules", "apply_label_rules", "labels_dtype"]

#: Voxels per block when converting probabilities to labels (bounds the temporary index array).
_LABEL_BLOCK = 1 << 20


def labels_dtype(max_label: int) -> type[np.unsignedinteger[Any]]:
    """The dtype of a label map whose largest label is ``max_label``: uint8 up to the ceiling.

    The ceiling is :data:`~nnunet_ext.io.labels.MAX_UINT8_LABEL`; above it, uint16.

    Examples:
        >>> labels_dtype(255).__name__, labels_dtype(256).__name__
        ('uint8', 'uint16')
    """
    return np.uint8 if max_label <= MAX_UINT8_LABEL else np.uint16


@dataclass(frozen=True)
class LabelRules:
    """Per-label decision rules on class indices (the spec's ``rules``, resolved).

    Attributes:
        scale: Decision scale of each class (length ``C``, all > 0), or ``None`` for none.
            The label of a voxel is ``argmax_c scale[c] * fused[c]`` (ties: lower label).
        take: ``(label, member)`` pairs of the ``from`` rules in priority order: label
            ``label`` is exactly where member ``member``'s own argmax is ``label``; where
            several rules claim a voxel, the first listed wins. Elsewhere the (scaled) fusion
            decides among the labels that no rule takes.
        thresholds: Region (sigmoid) models only: the decision threshold of each region
            channel (length ``C``, each in (0, 1); a region is where its fused probability
            exceeds it), or ``None`` for nnU-Net's 0.5 everywhere.

    Examples:
        >>> LabelRules.build(3, scale={2: 1.5}, take=[(2, 0)]).members
        [0]
        >>> LabelRules.build(2, scale={1: 0})
        Traceback (most recent call last):
        ...
        ValueError: scale of class 1 must be a finite number > 0; got 0.
        >>> LabelRules.build(3, thresholds={2: 0.35}).thresholds
        (0.5, 0.5, 0.35)
    """

    scale: tuple[float, ...] | None = None
    take: tuple[tuple[int, int], ...] = ()
    thresholds: tuple[float, ...] | None = None

    @classmethod
    def build(
        cls,
        num_classes: int,
        *,
        scale: Mapping[int, float] | None = None,
        take: Sequence[tuple[int, int]] = (),
        thresholds: Mapping[int, float] | None = None,
    ) -> LabelRules:
        """Check and build rules for ``num_classes`` classes.

        Args:
            num_classes: ``C``.
            scale: Class index to decision scale (others 1).
            take: ``(label, member)`` pairs in priority order, at most one per label.
            thresholds: Region channel index to decision threshold in (0, 1) (others 0.5).

        Raises:
            ValueError: For a class out of range, a scale that is not > 0, a threshold
                outside (0, 1), or a label taken twice.
        """
        scales = None
        if scale:
            values = [1.0] * num_classes
            for c, value in scale.items():
                if not 0 <= int(c) < num_classes:
                    raise ValueError(f"scale names class {c}; classes are 0..{num_classes - 1}.")
                if not np.isfinite(value) or value <= 0:
                    raise ValueError(
                        f"scale of class {c} must be a finite number > 0; got {value}."
                    )
                values[int(c)] = float(value)
            scales = None if all(v == 1.0 for v in values) else tuple(values)
        pairs = tuple((int(label), int(member)) for label, member in take)
        labels = [label for label, _ in pairs]
        for label, member in pairs:
            if not 0 <= label < num_classes or member < 0:
                raise ValueError(
                    f"take must pair a class 0..{num_classes - 1} with a member index >= 0; "
                    f"got ({label}, {member})."
                )
        if len(set(labels)) != len(labels):
            raise ValueError(f"take must name each label once; got labels {labels}.")
        if pairs and len(pairs) >= num_classes:
            raise ValueError(
                f"take must leave at least one of the {num_classes} labels to the fusion; "
                f"got from rules for all of them."
            )
        return cls(scales, pairs, _thresholds(num_classes, thresholds))

    @property
    def members(self) -> list[int]:
        """The members whose argmax the ``from`` rules need."""
        return sorted({member for _, member in self.take})

    @property
    def is_identity(self) -> bool:
        """Whether the rules change nothing (plain argmax, or 0.5 for every region)."""
        return self.scale is None and not self.take and self.thresholds is None


def _thresholds(
    num_classes: int, thresholds: Mapping[int, float] | None
) -> tuple[float, ...] | None:
    """The per-channel thresholds (0.5 where not given), ``None`` when all are 0.5."""
    if not thresholds:
        return None
    values = [0.5] * num_classes
    for c, value in thresholds.items():
        if not 0 <= int(c) < num_classes:
            raise ValueError(f"thresholds names class {c}; classes are 0..{num_classes - 1}.")
        if not 0.0 < float(value) < 1.0:
            raise ValueError(f"threshold of class {c} must be in (0, 1); got {value}.")
        values[int(c)] = float(value)
    return None if all(v == 0.5 for v in values) else tuple(values)


def apply_label_rules(
    fused: NDArray[Any],
    rules: LabelRules,
    member_labels: Mapping[int, NDArray[Any]] | Sequence[NDArray[Any]] | None = None,
) -> NDArray[np.unsignedinteger[Any]]:
    """Turn fused softmax probabilities into labels under per-label rules (pure, no files).

    The fused array is not modified nor copied: the decision is made in blocks of voxels.
    Another module (e.g. a predictor) can call this on a
    :class:`~nnunet_ext.ensemble.fusion.FusionAccumulator` result and the members' argmax maps
    (:meth:`~nnunet_ext.ensemble.fusion.FusionAccumulator.member_labels`).

    Args:
        fused: Fused probabilities ``(C, ...)``.
        rules: The rules.
        member_labels: Each member's own argmax label map (spatial shape), by member index;
            needed for the members of ``from`` rules only.

    Returns:
        ``uint8`` labels (``uint16`` beyond 256 classes) of shape ``fused.shape[1:]``.

    Raises:
        ValueError: If a ``from`` rule's member map is missing or has the wrong shape, or a
            rule names a class beyond ``C``.

    Examples:
        Scale: the fusion under-calls label 2 in the middle voxel; a scale of 1.5 recovers it.

        >>> fused = np.array([[0.6, 0.5, 0.2],
        ...                   [0.1, 0.1, 0.1],
        ...                   [0.3, 0.4, 0.7]], dtype=np.float32)
        >>> apply_label_rules(fused, LabelRules())  # before: plain argmax
        array([0, 0, 2], dtype=uint8)
        >>> apply_label_rules(fused, LabelRules.build(3, scale={2: 1.5}))  # after
        array([0, 2, 2], dtype=uint8)

        From: label 2 exactly where member 0 says 2 (here only the first voxel); the fusion
        decides the rest among labels 0 and 1.

        >>> member_0 = np.array([2, 0, 1], dtype=np.uint8)
        >>> apply_label_rules(fused, LabelRules.build(3, take=[(2, 0)]), {0: member_0})
        array([2, 0, 0], dtype=uint8)

        Two ``from`` rules claiming the same voxel: the first listed wins.

        >>> member_1 = np.array([1, 1, 1], dtype=np.uint8)
        >>> apply_label_rules(fused, LabelRules.build(3, take=[(2, 0), (1, 1)]),
        ...                   {0: member_0, 1: member_1})
        array([2, 1, 1], dtype=uint8)
    """
    num_channels = fused.shape[0]
    spatial = tuple(fused.shape[1:])
    _check_rules(rules, num_channels)
    maps = _member_maps(rules, member_labels, spatial)
    flat = fused.reshape(num_channels, -1)
    result = np.empty(flat.shape[1], dtype=labels_dtype(num_channels - 1))
    taken = [label for label, _ in rules.take]
    scaled = (
        []
        if rules.scale is None
        else [(c, fused.dtype.type(v)) for c, v in enumerate(rules.scale) if v != 1.0]
    )
    for start in range(0, flat.shape[1], _LABEL_BLOCK):
        stop = start + _LABEL_BLOCK
        if not scaled and not taken:
            result[start:stop] = flat[:, start:stop].argmax(axis=0)
            continue
        _scaled_argmax(flat[:, start:stop], result[start:stop], taken, dict(scaled))
        for label, member in reversed(rules.take):  # the first listed is applied last: it wins
            result[start:stop][maps[member][start:stop] == label] = label
    return result.reshape(spatial)


def _check_rules(rules: LabelRules, num_channels: int) -> None:
    """Refuse rules that do not fit ``num_channels`` fused channels."""
    if rules.thresholds is not None:
        raise ValueError(
            "thresholds apply to region-based (sigmoid) probabilities; got softmax ones "
            "(no regions_class_order)."
        )
    for label, _ in rules.take:
        if label >= num_channels:
            raise ValueError(f"a from rule names class {label}; the fusion has {num_channels}.")
    if rules.take and len(rules.take) >= num_channels:
        raise ValueError("from rules must leave at least one label to the fusion.")
    if rules.scale is not None and len(rules.scale) != num_channels:
        raise ValueError(
            f"scale must have one value per class ({num_channels}); got {len(rules.scale)}."
        )


def _member_maps(
    rules: LabelRules,
    member_labels: Mapping[int, NDArray[Any]] | Sequence[NDArray[Any]] | None,
    spatial: tuple[int, ...],
) -> dict[int, NDArray[Any]]:
    """The flat argmax map of each member a ``from`` rule names, checked."""
    maps: dict[int, NDArray[Any]] = {}
    for _, member in rules.take:
        if member_labels is None:
            raise ValueError(f"member_labels must hold member {member}'s argmax for a from rule.")
        try:
            found = member_labels[member]
        except (KeyError, IndexError):
            raise ValueError(
                f"member_labels must hold member {member}'s argmax for a from rule."
            ) from None
        if tuple(found.shape) != spatial:
            raise ValueError(
                f"member_labels[{member}] must have the spatial shape {spatial}; "
                f"got {tuple(found.shape)}."
            )
        maps[member] = np.asarray(found).reshape(-1)
    return maps


def _scaled_argmax(
    block: NDArray[Any], out: NDArray[Any], taken: Sequence[int], factors: Mapping[int, Any]
) -> None:
    """Write into ``out`` the argmax over the (scaled) channels of ``block`` no rule takes.

    A running maximum over the few channels; ``>`` keeps the first maximum, as ``np.argmax``
    (and without its strided copy).
    """
    best: NDArray[Any] | None = None
    for c in range(block.shape[0]):
        if c in taken:
            continue
        row = block[c]
        if c in factors:
            row = row * factors[c]
        if best is None:
            best = row.copy()
            out[...] = c
        else:
            better = row > best
            np.copyto(best, row, where=better)
            out[better] = c
