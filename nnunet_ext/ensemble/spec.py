"""The ensemble spec: which prediction folders to fuse and with which weights, as JSON.

Example (paths relative to the spec file's folder, or absolute)::

    {"schema_version": 1,
     "members": [{"path": "pred_2d", "weight": 0.3, "label_weights": {"3": 1.0}},
                 {"path": "pred_3d_fullres", "weight": 0.7, "label_weights": {"RV": 0.0}}]}

``weight`` applies to every label of the member; ``label_weights`` overrides it for single labels,
named by value or by name from ``dataset.json``. The tuner (``nnunet_ext.tune``) writes this format.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_ext.io import load_json, write_json

__all__ = ["SCHEMA_VERSION", "EnsembleSpec", "MemberSpec"]

#: Version of the JSON layout written by :meth:`EnsembleSpec.to_dict`.
SCHEMA_VERSION = 1


def _check_weight(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number; got {value!r}.")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{where} must be a finite number >= 0; got {value!r}.")
    return number


@dataclass(frozen=True)
class MemberSpec:
    """One ensemble member.

    Attributes:
        path: The prediction folder (absolute once loaded from a file).
        weight: Weight for every label, >= 0.
        label_weights: Per-label overrides: label name or value (as a string) to weight.
    """

    path: Path
    weight: float = 1.0
    label_weights: dict[str, float] = field(default_factory=dict)

    def to_dict(self, *, relative_to: Path | None = None) -> dict[str, Any]:
        """Return the JSON form; ``path`` relative to ``relative_to`` when below it."""
        path = self.path
        if relative_to is not None:
            try:
                path = Path(os.path.relpath(self.path, relative_to))
            except ValueError:  # other drive on Windows
                path = self.path
        out: dict[str, Any] = {"path": path.as_posix(), "weight": self.weight}
        if self.label_weights:
            out["label_weights"] = dict(self.label_weights)
        return out


@dataclass(frozen=True)
class EnsembleSpec:
    """Members and weights of an ensemble (see the module docstring for the JSON).

    Examples:
        >>> spec = EnsembleSpec.from_dict(
        ...     {"schema_version": 1, "members": [{"path": "/p/a", "weight": 2},
        ...      {"path": "/p/b", "weight": 1, "label_weights": {"3": 0}}]})
        >>> [m.weight for m in spec.members], spec.members[1].label_weights
        ([2.0, 1.0], {'3': 0.0})
    """

    members: tuple[MemberSpec, ...]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

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
    ) -> EnsembleSpec:
        """Build a spec from folders, global weights and per-label overrides.

        Raises:
            ValueError: If the lengths do not match ``input_dirs`` or a weight is invalid.
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
        members = []
        for index, folder in enumerate(input_dirs):
            weight = _check_weight(1.0 if weights is None else weights[index], f"weights[{index}]")
            overrides = {
                str(k): _check_weight(v, f"label_weights[{index}][{k!r}]")
                for k, v in ((label_weights or [{}] * n)[index]).items()
            }
            members.append(MemberSpec(Path(folder), weight, overrides))
        return cls(tuple(members))

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: Path | None = None, source: str = "spec"
    ) -> EnsembleSpec:
        """Validate and build from the JSON form; relative paths are resolved against ``base_dir``.

        Raises:
            ValueError: For a wrong schema version or malformed members (message names ``source``).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: must be a JSON object; got {type(data).__name__}.")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{source}: schema_version must be {SCHEMA_VERSION}; got {version!r}. "
                "Write the spec with this version of nnunet_ext."
            )
        raw = data.get("members")
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"{source}: 'members' must be a non-empty list; got {raw!r}.")
        members = []
        for index, item in enumerate(raw):
            where = f"{source}: members[{index}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("path"), str):
                raise ValueError(f"{where} must be an object with a string 'path'; got {item!r}.")
            unknown = set(item) - {"path", "weight", "label_weights", "name"}
            if unknown:
                raise ValueError(
                    f"{where} has unknown field(s) {sorted(unknown)}; allowed: path, weight, "
                    "label_weights, name."
                )
            path = Path(item["path"])
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            weight = _check_weight(item.get("weight", 1.0), f"{where}.weight")
            overrides_raw = item.get("label_weights", {})
            if not isinstance(overrides_raw, Mapping):
                raise ValueError(f"{where}.label_weights must be an object; got {overrides_raw!r}.")
            overrides = {
                str(k): _check_weight(v, f"{where}.label_weights[{k!r}]")
                for k, v in overrides_raw.items()
            }
            members.append(MemberSpec(path, weight, overrides))
        from nnunet_ext.io.schema import check_keys  # unknown keys are errors (issue 10)

        check_keys(data, source=source, where=None, allowed=("schema_version", "members"))
        return cls(tuple(members))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EnsembleSpec:
        """Read a spec file; member paths are relative to its folder.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If it is not valid JSON or not a valid spec.
        """
        file = Path(path)
        return cls.from_dict(load_json(file), base_dir=file.resolve().parent, source=str(file))

    def to_dict(self, *, relative_to: Path | None = None) -> dict[str, Any]:
        """Return the JSON form (``schema_version`` 1)."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "members": [m.to_dict(relative_to=relative_to) for m in self.members],
        }
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the spec atomically, with member paths relative to the file's folder."""
        file = Path(path)
        return write_json(file, self.to_dict(relative_to=file.resolve().parent))

    def with_input_dirs(self, input_dirs: Sequence[str | os.PathLike[str]]) -> EnsembleSpec:
        """Return the spec's weights applied to other folders, in the same order.

        Raises:
            ValueError: If the number of folders differs from the number of members.
        """
        if len(input_dirs) != len(self.members):
            raise ValueError(
                f"-i/--input must list as many folders as the spec has members "
                f"({len(self.members)}); got {len(input_dirs)}."
            )
        return EnsembleSpec(
            tuple(
                MemberSpec(Path(d), m.weight, dict(m.label_weights))
                for d, m in zip(input_dirs, self.members, strict=True)
            ),
            dict(self.extra),
        )
