"""The ensemble spec: which prediction folders to fuse, with which weights and per-label rules.

Version 2 (paths relative to the spec file's folder, or absolute)::

    {"schema_version": 2,
     "members": [{"path": "pred_2d", "weight": 0.3, "label_weights": {"3": 1.0}, "name": "2d"},
                 {"path": "pred_3d_fullres", "weight": 0.7, "label_weights": {"RV": 0.0}}],
     "rules": [{"label": "RV", "from": "2d"},
               {"label": "LV", "scale": 1.5}]}

``weight`` applies to every label of the member; ``label_weights`` overrides it for single labels,
named by value or by name from ``dataset.json``. ``name`` (optional) names a member for rules.

``rules`` (optional, version 2) change how the fused probabilities become labels:

* ``{"label": L, "scale": s}``: the decision is ``argmax_c scale[c] * fused[c]`` with
  ``scale[L] = s`` (> 0; 1 for labels without a scale rule). At most one scale rule per label.
* ``{"label": L, "from": M}``: label ``L`` is exactly where member ``M`` (its index in
  ``members``, or its ``name``) predicts ``L`` by its own argmax; elsewhere the weighted fusion
  decides among the other labels. Where several ``from`` rules claim a voxel, the one listed
  first in ``rules`` wins. At most one ``from`` rule per label.
* ``{"label": R, "threshold": t}`` (version 3; region-based (sigmoid) models only): region ``R``
  is where its fused probability exceeds ``t`` in (0, 1) instead of nnU-Net's 0.5. For region
  models ``scale`` is refused and ``{"label": R, "from": M}`` is member ``M``'s own decision of
  region ``R`` (its probability > 0.5: weight 1 on ``M``, 0 on the others, threshold 0.5).

Per-region weights are ``label_weights`` keyed by the region's name in ``dataset.json``.

See :func:`nnunet_ext.ensemble.fusion.apply_label_rules` for the arithmetic. Every level is
strict: an unknown key is an error that names its key path (e.g. ``members[1].label_weights``)
and the allowed keys. Version 1 (members only, written by nnunet_ext 0.1) is still read and
fuses exactly as before. The tuner (``nnunet_ext.tune``) writes this format.

Version 3 adds ``threshold`` rules and one optional key, ``qc``: the quality-check thresholds of
``--qc`` (:class:`~nnunet_ext.qc.thresholds.QcThresholds`, e.g. calibrated on the
cross-validation cases by ``nnunet-ext tune --qc-calibrate``, with the CV volume range of each
label). A spec with neither is still written as version 2, so older versions of nnunet_ext keep
reading it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nnunet_ext.io import load_json, write_json
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.models import checkpoint_name, fold_names
from nnunet_ext.qc.thresholds import QcThresholds

__all__ = ["SCHEMA_VERSION", "EnsembleSpec", "MemberSpec", "RuleSpec"]

#: Latest version of the JSON layout written by :meth:`EnsembleSpec.to_dict` (a spec without
#: ``qc`` thresholds or ``threshold`` rules is written as version 2).
SCHEMA_VERSION = 3

#: Versions :meth:`EnsembleSpec.from_dict` reads.
READABLE_VERSIONS = (1, 2, 3)

_TOP_KEYS = {
    1: ("schema_version", "members"),
    2: ("schema_version", "members", "rules"),
    3: ("schema_version", "members", "rules", "qc"),
}
_MEMBER_KEYS = ("path", "weight", "label_weights", "name")
#: With model members (``predict`` specs): ``model`` instead of ``path``, and its options.
_MODEL_MEMBER_KEYS = ("path", "model", "folds", "checkpoint", "weight", "label_weights", "name")
_MODEL_KEYS = ("folds", "checkpoint")
_RULE_KEYS = {2: ("label", "from", "scale"), 3: ("label", "from", "scale", "threshold")}
_RULE_KINDS = ("from", "scale", "threshold")


def _check_weight(value: Any, where: str, source: str | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(source, where, "a number", repr(value))
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise _error(source, where, "a finite number >= 0", repr(value))
    return number


def _error(source: str | None, key: str, expected: str, found: str) -> InputError:
    if source is None:  # programmatic use (from_weights): the key is the variable
        return InputError(key, expected, found)
    return InputError(source, expected, found, key=key)


def _check_keys(item: Mapping[str, Any], allowed: Sequence[str], where: str, source: str) -> None:
    unknown = [str(k) for k in item if k not in allowed]
    if unknown:
        path = f"{where}.{unknown[0]}" if where else unknown[0]
        raise InputError(
            source,
            f"a known key (allowed here: {', '.join(allowed)})",
            repr(unknown[0]),
            key=path,
            fix="Remove or rename it.",
        )


def _threshold(value: Any, where: str, source: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise _error(source, f"{where}.threshold", "a number in (0, 1)", repr(value))
    return float(value)


def _label_key(value: Any, where: str, source: str | None) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise _error(source, where, "a label name or value (string or integer)", repr(value))
    return str(value)


@dataclass(frozen=True)
class MemberSpec:
    """One ensemble member.

    Attributes:
        path: The prediction folder, or with ``model`` the trained model folder (absolute once
            loaded from a file).
        weight: Weight for every label, >= 0.
        label_weights: Per-label overrides: label name or value (as a string) to weight.
        name: Optional name, used by rules (``"from": "2d"``).
        model: Whether ``path`` is a trained model folder (JSON key ``model``; ``predict``
            specs) rather than a folder of probabilities (JSON key ``path``).
        folds: A model member's folds (``None``: every fold with the checkpoint).
        checkpoint: A model member's checkpoint file name (``None``: the command's default).
    """

    path: Path
    weight: float = 1.0
    label_weights: dict[str, float] = field(default_factory=dict)
    name: str | None = None
    model: bool = False
    folds: tuple[str, ...] | None = None
    checkpoint: str | None = None

    def to_dict(self, *, relative_to: Path | None = None) -> dict[str, Any]:
        """Return the JSON form; ``path`` relative to ``relative_to`` when below it."""
        path = self.path
        if relative_to is not None:
            try:
                path = Path(os.path.relpath(self.path, relative_to))
            except ValueError:  # other drive on Windows
                path = self.path
        out: dict[str, Any] = {("model" if self.model else "path"): path.as_posix()}
        if self.folds is not None:
            out["folds"] = [int(f) if f.isdigit() else f for f in self.folds]
        if self.checkpoint is not None:
            out["checkpoint"] = self.checkpoint
        out["weight"] = self.weight
        if self.label_weights:
            out["label_weights"] = dict(self.label_weights)
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class RuleSpec:
    """One per-label rule (see the module docstring).

    Attributes:
        label: Label name or value (as a string), resolved against ``dataset.json`` when fusing.
        member: For a ``from`` rule, the index of the member whose argmax decides the label.
        scale: For a ``scale`` rule, the decision scale of the label (> 0).
        threshold: For a ``threshold`` rule (regions), the decision threshold in (0, 1).
    """

    label: str
    member: int | None = None
    scale: float | None = None
    threshold: float | None = None

    @property
    def kind(self) -> str:
        """``"from"``, ``"scale"`` or ``"threshold"``."""
        if self.member is not None:
            return "from"
        return "scale" if self.scale is not None else "threshold"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (members by index)."""
        if self.member is not None:
            return {"label": self.label, "from": self.member}
        if self.scale is not None:
            return {"label": self.label, "scale": self.scale}
        return {"label": self.label, "threshold": self.threshold}


def _parse_rules(
    raw: Any, members: Sequence[MemberSpec], source: str | None, version: int = SCHEMA_VERSION
) -> tuple[RuleSpec, ...]:
    if not isinstance(raw, list):
        raise _error(source, "rules", "a list of rule objects", repr(raw))
    names = {m.name: i for i, m in enumerate(members) if m.name is not None}
    rules: list[RuleSpec] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(raw):
        where = f"rules[{index}]"
        if not isinstance(item, Mapping):
            raise _error(source, where, 'an object like {"label": "RV", "from": 0}', repr(item))
        if source is not None:
            _check_keys(item, _RULE_KEYS[version], where, source)
        if "label" not in item:
            raise _error(source, f"{where}.label", "a label name or value", "no 'label' key")
        label = _label_key(item["label"], f"{where}.label", source)
        if sum(kind in item for kind in _RULE_KINDS) != 1:
            kinds = "', '".join(_RULE_KEYS[version][1:])
            raise _error(source, where, f"exactly one of '{kinds}'", f"keys {sorted(item)}")
        if "from" in item:
            ref = item["from"]
            if isinstance(ref, str) and ref in names:
                member = names[ref]
            elif isinstance(ref, int) and not isinstance(ref, bool) and 0 <= ref < len(members):
                member = ref
            else:
                known = [str(i) for i in range(len(members))] + [repr(n) for n in names]
                raise _error(
                    source,
                    f"{where}.from",
                    f"a member index or name ({', '.join(known)})",
                    repr(ref),
                )
            rule = RuleSpec(label, member=member)
        elif "threshold" in item:
            rule = RuleSpec(label, threshold=_threshold(item["threshold"], where, source))
        else:
            value = item["scale"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _error(source, f"{where}.scale", "a number > 0", repr(value))
            if not math.isfinite(float(value)) or float(value) <= 0:
                raise _error(source, f"{where}.scale", "a finite number > 0", repr(value))
            rule = RuleSpec(label, scale=float(value))
        if (rule.kind, label) in seen:
            raise _error(
                source,
                where,
                f"the only {rule.kind!r} rule of label {label!r}",
                "a second one",
            )
        seen.add((rule.kind, label))
        rules.append(rule)
    return tuple(rules)


@dataclass(frozen=True)
class EnsembleSpec:
    """Members, weights and per-label rules of an ensemble (see the module docstring).

    Examples:
        >>> spec = EnsembleSpec.from_dict(
        ...     {"schema_version": 2, "members": [{"path": "/p/a", "weight": 2, "name": "2d"},
        ...      {"path": "/p/b", "weight": 1, "label_weights": {"3": 0}}],
        ...      "rules": [{"label": "3", "from": "2d"}, {"label": "1", "scale": 2}]})
        >>> [m.weight for m in spec.members], spec.members[1].label_weights
        ([2.0, 1.0], {'3': 0.0})
        >>> [(r.label, r.kind) for r in spec.rules]
        [('3', 'from'), ('1', 'scale')]
        >>> EnsembleSpec.from_dict({"schema_version": 2, "members": [{"path": "a", "wieght": 1}]})
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: spec: members[0].wieght must be a known key \
(allowed here: path, weight, label_weights, name); got 'wieght'. Remove or rename it.
    """

    members: tuple[MemberSpec, ...]
    rules: tuple[RuleSpec, ...] = ()
    qc: QcThresholds | None = None

    @property
    def input_dirs(self) -> list[Path]:
        """The member folders in order."""
        return [m.path for m in self.members]

    @property
    def weights(self) -> list[float]:
        """The global weight of each member."""
        return [m.weight for m in self.members]

    @property
    def label_weights(self) -> list[dict[str, float]]:
        """The per-label overrides of each member."""
        return [dict(m.label_weights) for m in self.members]

    @classmethod
    def from_weights(
        cls,
        input_dirs: Sequence[str | os.PathLike[str]],
        *,
        weights: Sequence[float] | None = None,
        label_weights: Sequence[Mapping[str | int, float]] | None = None,
        rules: Sequence[Mapping[str, Any]] | None = None,
        names: Sequence[str | None] | None = None,
        models: bool = False,
    ) -> EnsembleSpec:
        """Build a spec from folders, global weights, per-label overrides and rules.

        Args:
            input_dirs: The member folders.
            weights: One global weight per folder (default 1).
            label_weights: Per folder, label name or value to weight.
            rules: Rules in their JSON form (``{"label": 3, "from": 0}``, ``{"label": 1,
                "scale": 1.5}``), in priority order.
            names: Optional member names (rules may refer to them).
            models: The folders are trained model folders (``model`` members), not
                probability folders.

        Raises:
            ValueError: If the lengths do not match ``input_dirs`` or a value is invalid.
        """
        n = len(input_dirs)
        if weights is not None and len(weights) != n:
            raise ValueError(
                f"weights must have one value per input folder ({n}); got {len(weights)}."
            )
        if label_weights is not None and len(label_weights) != n:
            raise ValueError(
                f"label_weights must have one mapping per input folder ({n}); "
                f"got {len(label_weights)}."
            )
        if names is not None and len(names) != n:
            raise ValueError(f"names must have one entry per input folder ({n}); got {len(names)}.")
        members = []
        for index, folder in enumerate(input_dirs):
            weight = _check_weight(1.0 if weights is None else weights[index], f"weights[{index}]")
            overrides = {
                str(k): _check_weight(v, f"label_weights[{index}][{k!r}]")
                for k, v in ((label_weights or [{}] * n)[index]).items()
            }
            name = None if names is None else names[index]
            members.append(MemberSpec(Path(folder), weight, overrides, name, model=models))
        parsed = _parse_rules(list(rules or []), members, None)
        return cls(tuple(members), parsed)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        base_dir: Path | None = None,
        source: str = "spec",
        models: bool = False,
    ) -> EnsembleSpec:
        """Validate and build from the JSON form; relative paths are resolved against ``base_dir``.

        Reads ``schema_version`` 1 (members only), 2 (members and rules) and 3 (``threshold``
        rules and ``qc`` too). Unknown keys are
        errors at every level. With ``models`` (``predict`` and bundle specs), a member may be
        a trained model folder (``model`` instead of ``path``, with optional ``folds`` and
        ``checkpoint``); without, a ``model`` member is an error naming it.

        Raises:
            InputError: (a ``ValueError``) for a wrong schema version, an unknown key or a
                malformed value; the message names ``source`` and the key path.
        """
        if not isinstance(data, Mapping):
            raise InputError(source, "a JSON object", type(data).__name__)
        version = data.get("schema_version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise InputError(
                source,
                f"{', '.join(map(str, READABLE_VERSIONS[:-1]))} or {READABLE_VERSIONS[-1]}",
                repr(version),
                key="schema_version",
                fix="Write the spec with this version of nnunet_ext.",
            )
        _check_keys(data, _TOP_KEYS[version], "", source)
        raw = data.get("members")
        if not isinstance(raw, list) or not raw:
            raise InputError(source, "a non-empty list", repr(raw), key="members")
        members = [
            _parse_member(item, f"members[{index}]", base_dir, source, models)
            for index, item in enumerate(raw)
        ]
        names = [m.name for m in members if m.name is not None]
        if len(set(names)) != len(names):
            raise InputError(source, "distinct member names", repr(names), key="members")
        rules = _parse_rules(data.get("rules", []), members, source, version)
        qc = QcThresholds.from_dict(data["qc"], source=source, where="qc") if "qc" in data else None
        return cls(tuple(members), rules, qc)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, models: bool = False) -> EnsembleSpec:
        """Read a spec file; member paths are relative to its folder.

        Args:
            path: The spec JSON.
            models: Accept ``model`` members (trained model folders), as ``predict`` does.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If it is not valid JSON or not a valid spec (:class:`InputError`).
        """
        file = Path(path)
        return cls.from_dict(
            load_json(file), base_dir=file.resolve().parent, source=str(file), models=models
        )

    def to_dict(self, *, relative_to: Path | None = None) -> dict[str, Any]:
        """Return the JSON form (``rules`` only when there are some).

        ``schema_version`` is 3 with ``qc`` thresholds or a ``threshold`` rule, else 2.
        """
        thresholds = any(r.threshold is not None for r in self.rules)
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION if self.qc is not None or thresholds else 2,
            "members": [m.to_dict(relative_to=relative_to) for m in self.members],
        }
        if self.rules:
            out["rules"] = [r.to_dict() for r in self.rules]
        if self.qc is not None:
            out["qc"] = self.qc.to_dict()
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the spec atomically, with member paths relative to the file's folder."""
        file = Path(path)
        return write_json(file, self.to_dict(relative_to=file.resolve().parent))

    def with_input_dirs(self, input_dirs: Sequence[str | os.PathLike[str]]) -> EnsembleSpec:
        """Return the spec's weights and rules applied to other folders, in the same order.

        Raises:
            ValueError: If the number of folders differs from the number of members.
        """
        if len(input_dirs) != len(self.members):
            raise ValueError(
                f"input_dirs must list as many folders as the spec has members "
                f"({len(self.members)}); got {len(input_dirs)}."
            )
        return EnsembleSpec(
            tuple(
                replace(m, path=Path(d), label_weights=dict(m.label_weights))
                for d, m in zip(input_dirs, self.members, strict=True)
            ),
            self.rules,
            self.qc,
        )


def _parse_member(
    item: Any, where: str, base_dir: Path | None, source: str, models: bool
) -> MemberSpec:
    """One member of the JSON form (see :meth:`EnsembleSpec.from_dict`)."""
    if not isinstance(item, Mapping):
        raise InputError(source, "an object with a string 'path'", repr(item), key=where)
    is_model = "model" in item
    if is_model and not models:
        raise InputError(
            source,
            "a probability folder ('path'): nnunet-ext ensemble fuses predictions",
            "a trained model folder ('model')",
            key=f"{where}.model",
            fix="Model folders are predicted by nnunet-ext predict, whose spec takes them.",
        )
    _check_keys(item, _MODEL_MEMBER_KEYS if models else _MEMBER_KEYS, where, source)
    if is_model and "path" in item:
        raise InputError(
            source,
            "'model' (a trained model folder) or 'path' (a probability folder)",
            "both",
            key=where,
        )
    stray = sorted(set(item) & set(_MODEL_KEYS))
    if stray and not is_model:
        raise InputError(
            source, "a 'model' member (these keys belong to model members)", repr(stray), key=where
        )
    key = "model" if is_model else "path"
    if not isinstance(item.get(key), str) or not item[key]:
        raise InputError(
            source, "a folder path (string)", repr(item.get(key)), key=f"{where}.{key}"
        )
    path = Path(item[key])
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    weight = _check_weight(item.get("weight", 1.0), f"{where}.weight", source)
    overrides_raw = item.get("label_weights", {})
    if not isinstance(overrides_raw, Mapping):
        raise InputError(source, "an object", repr(overrides_raw), key=f"{where}.label_weights")
    overrides = {
        str(k): _check_weight(v, f'{where}.label_weights."{k}"', source)
        for k, v in overrides_raw.items()
    }
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise InputError(source, "a non-empty string", repr(name), key=f"{where}.name")
    folds = fold_names(item["folds"], f"{source}: {where}.folds") if "folds" in item else None
    checkpoint = (
        checkpoint_name(item["checkpoint"], f"{source}: {where}.checkpoint")
        if "checkpoint" in item
        else None
    )
    return MemberSpec(path, weight, overrides, name, is_model, folds, checkpoint)
