"""The spec's weights and rules on the probability channels of ``dataset.json``'s labels.

A spec names labels by value or by name (``{"RV": 1}``, ``{"label": "LV", "from": 0}``);
:func:`label_channels` maps both to the channel of each label (softmax models) or region
(sigmoid models), :func:`weight_matrix` builds the ``(M, C)`` weights and :func:`label_rules`
the :class:`~nnunet_ext.ensemble.rules.LabelRules` on those channels. For region models a
``from`` rule is member ``M``'s own decision of the region: :func:`weight_matrix` gives the
region weight 1 on ``M`` and 0 on the others, :func:`label_rules` its threshold 0.5.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.ensemble.rules import LabelRules
from nnunet_ext.ensemble.spec import EnsembleSpec
from nnunet_ext.io import InputError, LabelSpec
from nnunet_ext.io.schema import key_path

__all__ = ["label_channels", "label_rules", "weight_matrix"]


def label_channels(label_spec: LabelSpec) -> tuple[list[int | tuple[int, ...]], dict[str, int]]:
    """Return the label/region of each channel and a name-or-value -> channel lookup."""
    lookup: dict[str, int] = {}
    if label_spec.has_regions:
        if label_spec.regions_class_order is None:
            raise ValueError(
                "dataset.json defines regions but no regions_class_order; nnU-Net needs it to "
                "turn region probabilities into labels."
            )
        channels: list[int | tuple[int, ...]] = []
        for name, value in label_spec.labels.items():
            if name == "ignore" or value == 0 or (isinstance(value, tuple) and set(value) == {0}):
                continue
            lookup[name] = len(channels)
            channels.append(value)
        for index, value in enumerate(label_spec.regions_class_order):
            lookup.setdefault(str(value), index)
        return channels, lookup
    values = sorted(
        {int(v) for k, v in label_spec.labels.items() if k != "ignore" and isinstance(v, int)}
    )
    for name, value in label_spec.labels.items():
        if name != "ignore" and isinstance(value, int):
            lookup[name] = values.index(value)
    for index, value in enumerate(values):
        lookup[str(value)] = index
    return list(values), lookup


def weight_matrix(
    spec: EnsembleSpec, label_spec: LabelSpec, *, source: str = "spec"
) -> NDArray[np.float64]:
    """Build the ``(M, C)`` weight matrix of ``spec`` for the channels of ``label_spec``.

    Each member's global ``weight`` fills its row; ``label_weights`` override single labels,
    named by value or by name from ``dataset.json``.

    Args:
        spec: Members and weights.
        label_spec: The ``dataset.json`` labels of the inputs.
        source: The spec file (or option) the weights come from, for error messages.

    Returns:
        Unnormalised weights, one row per member, one column per probability channel.

    Raises:
        InputError: For a label name/value ``dataset.json`` does not define.

    Examples:
        >>> labels = LabelSpec(labels={"background": 0, "LV": 1, "RV": 2})
        >>> spec = EnsembleSpec.from_weights(
        ...     ["a", "b"], weights=[0.3, 0.7], label_weights=[{"RV": 1}, {"2": 0}])
        >>> weight_matrix(spec, labels)
        array([[0.3, 0.3, 1. ],
               [0.7, 0.7, 0. ]])
    """
    channels, lookup = label_channels(label_spec)
    matrix = np.array([[m.weight] * len(channels) for m in spec.members], dtype=np.float64)
    for row, member in enumerate(spec.members):
        for key, weight in member.label_weights.items():
            if key not in lookup:
                raise InputError(
                    source,
                    f"a label defined in {label_spec.source} ({', '.join(lookup)})",
                    repr(key),
                    key=key_path(key_path(key_path("members", row), "label_weights"), key),
                    fix=f"Use a defined label name or value.{_did_you_mean(key, lookup)}",
                )
            matrix[row, lookup[key]] = weight
    if label_spec.has_regions:
        for channel, owner in _region_rules(spec, label_spec)[1].items():
            matrix[:, channel] = 0.0
            matrix[owner, channel] = 1.0
    return matrix


def _did_you_mean(key: str, lookup: Mapping[str, int]) -> str:
    """`` Did you mean 'X'?`` for the closest known label (case-insensitive), or ``""``."""
    lowered = {k.lower(): k for k in lookup}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1)
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""


def _unknown_label(key: str, lookup: Mapping[str, int], where: str) -> ValueError:
    return ValueError(
        f"{where} name label {key!r}, which dataset.json does not define; "
        f"known: {', '.join(lookup)}.{_did_you_mean(key, lookup)}"
    )


def label_rules(spec: EnsembleSpec, label_spec: LabelSpec) -> LabelRules:
    """Resolve the spec's ``rules`` to class indices of ``label_spec``'s channels.

    Region (sigmoid) models: ``threshold`` rules, and ``from`` rules as threshold 0.5 (their
    weights are :func:`weight_matrix`'s); a ``scale`` rule is refused.

    Raises:
        ValueError: For an unknown label, a ``scale`` rule on regions, a ``threshold`` rule
            on labels, or two rules of one region.

    Examples:
        >>> labels = LabelSpec(labels={"background": 0, "LV": 1, "RV": 2})
        >>> spec = EnsembleSpec.from_weights(
        ...     ["a", "b"], rules=[{"label": "RV", "from": 0}, {"label": 1, "scale": 1.5}])
        >>> label_rules(spec, labels)
        LabelRules(scale=(1.0, 1.5, 1.0), take=((2, 0),), thresholds=None)
        >>> regions = LabelSpec(labels={"background": 0, "WT": (1, 2), "TC": 2},
        ...                     regions_class_order=(1, 2))
        >>> label_rules(EnsembleSpec.from_weights(
        ...     ["a", "b"], rules=[{"label": "TC", "threshold": 0.35}]), regions).thresholds
        (0.5, 0.35)
    """
    if not spec.rules:
        return LabelRules()
    channels, lookup = label_channels(label_spec)
    if label_spec.has_regions:
        thresholds, _ = _region_rules(spec, label_spec)
        return LabelRules.build(len(channels), thresholds=thresholds)
    scale: dict[int, float] = {}
    take: list[tuple[int, int]] = []
    for index, rule in enumerate(spec.rules):
        if rule.label not in lookup:
            raise _unknown_label(rule.label, lookup, f"rules[{index}] of the spec")
        channel = lookup[rule.label]
        if rule.threshold is not None:
            raise ValueError(
                f"rules[{index}] of the spec: a threshold applies to region-based (sigmoid) "
                f"models; dataset.json defines label {rule.label!r} of a softmax model. Use a "
                "scale rule."
            )
        if rule.member is not None:
            if channel in [c for c, _ in take]:
                raise ValueError(
                    f"rules[{index}] of the spec: label {rule.label!r} has a from rule already "
                    "(by another name or value); keep one."
                )
            take.append((channel, rule.member))
        else:
            if channel in scale:
                raise ValueError(
                    f"rules[{index}] of the spec: label {rule.label!r} has a scale already "
                    "(by another name or value); keep one."
                )
            scale[channel] = float(rule.scale or 1.0)
    return LabelRules.build(len(label_channels(label_spec)[0]), scale=scale, take=take)


def _region_rules(
    spec: EnsembleSpec, label_spec: LabelSpec
) -> tuple[dict[int, float], dict[int, int]]:
    """The region channels' thresholds and ``from`` members (thresholds 0.5 for those)."""
    _, lookup = label_channels(label_spec)
    thresholds: dict[int, float] = {}
    take: dict[int, int] = {}
    for index, rule in enumerate(spec.rules):
        where = f"rules[{index}] of the spec"
        if rule.label not in lookup:
            raise _unknown_label(rule.label, lookup, where)
        channel = lookup[rule.label]
        if rule.scale is not None:
            raise ValueError(
                f"{where}: a scale applies to softmax (label) models; dataset.json defines "
                f"regions. Use a threshold rule for region {rule.label!r}."
            )
        if channel in thresholds:
            raise ValueError(
                f"{where}: region {rule.label!r} has a threshold or from rule already "
                "(by another name or value); keep one."
            )
        thresholds[channel] = 0.5 if rule.threshold is None else rule.threshold
        if rule.member is not None:
            take[channel] = rule.member
    return thresholds, take
