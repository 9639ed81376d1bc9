"""Everything ``nnunet-ext predict`` checks before a network is loaded (torch-free).

A *member* is either a trained model folder (``$nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG``
with ``fold_k/<checkpoint>``) or, as in ``nnunet-ext ensemble``, a folder of probabilities
(``CASE.npz`` + ``CASE.pkl``). A predict spec is an ensemble spec whose members may carry
``"model"`` instead of ``"path"``::

    {"schema_version": 1,
     "members": [{"model": "Dataset501_X/nnUNetTrainer__nnUNetPlans__2d", "weight": 0.4},
                 {"model": "Dataset501_X/nnUNetTrainer__nnUNetPlans__3d_fullres",
                  "folds": [0, 1], "checkpoint": "checkpoint_best.pth",
                  "weight": 0.6, "label_weights": {"RV": 1.0}},
                 {"path": "pred_external", "weight": 0.2}]}

Model members take the extra keys ``folds`` (default: every ``fold_k`` that has the checkpoint,
like nnU-Net) and ``checkpoint`` (default ``checkpoint_final.pth``); everything else (weights,
per-label weights) is read by :class:`nnunet_ext.ensemble.spec.EnsembleSpec`, so the two commands
share one weight format.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.ensemble.channels import label_rules, weight_matrix
from nnunet_ext.ensemble.fusion import normalize_weights
from nnunet_ext.ensemble.rules import LabelRules
from nnunet_ext.ensemble.spec import EnsembleSpec
from nnunet_ext.io import LabelSpec, list_case_files, load_json_object
from nnunet_ext.io.images import CaseInput, list_image_cases, verify_images
from nnunet_ext.io.models import DEFAULT_CHECKPOINT, ModelFolder, checkpoint_name, fold_names
from nnunet_ext.io.probabilities import inspect_probabilities
from nnunet_ext.postprocess.plan import PostprocessingPlan

__all__ = [
    "DEFAULT_CHECKPOINT",
    "CaseInput",
    "ModelMember",
    "PredictMember",
    "PredictPlan",
    "ProbabilityMember",
    "check_settings",
    "list_image_cases",
    "load_predict_spec",
    "plan_prediction",
    "select_part",
    "verify_images",
]

#: A trained model folder as a predict member (:class:`nnunet_ext.io.models.ModelFolder`).
ModelMember = ModelFolder


@dataclass(frozen=True)
class ProbabilityMember:
    """A folder of probabilities (``CASE.npz`` + ``CASE.pkl``), fused as by ``ensemble``."""

    path: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the provenance file."""
        return {"path": str(self.path)}


PredictMember = ModelMember | ProbabilityMember


@dataclass(frozen=True)
class PredictPlan:
    """A validated prediction run: what :func:`nnunet_ext.predict.predict_folder` will do.

    Attributes:
        members: The members, in spec order.
        weights: Unnormalised ``(M, C)`` weight matrix (members x probability channels), as
            given (the provenance records it).
        fusion_weights: ``weights`` normalised once, where they are checked (each class column
            sums to 1): what the fusion uses.
        spec: The weights as an ensemble spec (member paths: model folders or probability folders).
        label_spec: Labels shared by all members.
        cases: All cases of the input folder (before ``part_id``/``num_parts``).
        settings: Step size, TTA, mirror axes (per member), device.
        rules: The spec's per-label ``scale`` and ``from`` rules on class indices, applied to
            the fused probabilities exactly as ``nnunet-ext ensemble`` applies them.
        allow_unsafe_checkpoints: Load checkpoints with ``weights_only=False`` (runs code from
            the files; only for files their user trusts).
        postprocessing: A postprocessing plan applied to each case's labels before they are
            written (``predict --plan``), or ``None``.
    """

    members: tuple[PredictMember, ...]
    weights: NDArray[np.float64]
    fusion_weights: NDArray[np.float64] = field(repr=False)
    spec: EnsembleSpec
    label_spec: LabelSpec
    cases: tuple[CaseInput, ...]
    settings: dict[str, Any]
    rules: LabelRules = field(default_factory=LabelRules)
    allow_unsafe_checkpoints: bool = False
    postprocessing: PostprocessingPlan | None = None

    @property
    def models(self) -> list[ModelMember]:
        """The model members."""
        return [m for m in self.members if isinstance(m, ModelMember)]

    @property
    def first_model(self) -> ModelMember:
        """The first model member (its ``plans.json`` selects the image writer)."""
        return self.models[0]

    @property
    def file_ending(self) -> str:
        """Image and label file ending: the first model's ``dataset.json`` (its images are read)."""
        return self.first_model.file_ending


def load_predict_spec(path: str | os.PathLike[str]) -> EnsembleSpec:
    """Read a predict spec: an ensemble spec whose members may be ``model`` members.

    The spec owns its schema (:class:`~nnunet_ext.ensemble.spec.EnsembleSpec`): a ``model``
    member (a trained model folder, with optional ``folds`` and ``checkpoint``) is a
    :class:`~nnunet_ext.ensemble.spec.MemberSpec` with ``model=True``.

    Args:
        path: The spec JSON; relative paths are relative to its folder.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: For malformed JSON or members (the message names the file and member).

    Examples:
        >>> import json, tempfile
        >>> file = Path(tempfile.mkdtemp()) / "spec.json"
        >>> _ = file.write_text(json.dumps({"schema_version": 1, "members": [
        ...     {"model": "/r/Tr__P__2d", "folds": [0], "weight": 2}, {"path": "/p/b"}]}))
        >>> spec = load_predict_spec(file)
        >>> spec.weights, [(m.model, m.folds) for m in spec.members]
        ([2.0, 1.0], [(True, ('0',)), (False, None)])
    """
    return EnsembleSpec.load(path, models=True)


def select_part(cases: Sequence[Any], part_id: int, num_parts: int) -> list[Any]:
    """The cases of part ``part_id`` of ``num_parts``, exactly as ``nnUNetv2_predict`` splits.

    Examples:
        >>> select_part(list("abcde"), 1, 2)
        ['b', 'd']
    """
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise ValueError(
            f"part_id must be in 0..num_parts-1 and num_parts >= 1; got part {part_id} "
            f"of {num_parts}."
        )
    return list(cases[part_id::num_parts])


def _resolve_mirror_axes(
    mirror_axes: Sequence[int] | None, models: Sequence[ModelMember]
) -> list[list[int] | None]:
    """Per model, the requested axes it mirrors (``None``: its checkpoint's default).

    Checked before any network loads: axes 0..2, each used by some model, and a subset of the
    axes each model's checkpoint allows (``inference_allowed_mirroring_axes``).
    """
    if mirror_axes is None:
        return [None] * len(models)
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in mirror_axes):
        raise ValueError(f"mirror_axes must be integers 0, 1 or 2; got {list(mirror_axes)}.")
    axes = sorted(set(mirror_axes))
    if any(a < 0 or a > 2 for a in axes):
        raise ValueError(f"mirror_axes must be axes 0, 1 or 2; got {list(mirror_axes)}.")
    per_model: list[list[int] | None] = [[a for a in axes if a < m.spatial_dims] for m in models]
    used = {a for chosen in per_model for a in chosen or []}
    unused = [a for a in axes if a not in used]
    if unused:
        raise ValueError(
            f"mirror_axes {unused} exceed every model's patch dimensions "
            f"({sorted({m.spatial_dims for m in models})}); 2d models mirror axes 0 and 1 only."
        )
    for model, chosen in zip(models, per_model, strict=True):
        allowed = model.allowed_mirror_axes or ()
        if chosen and not set(chosen) <= set(allowed):
            raise ValueError(
                f"mirror_axes {chosen} must be a subset of the axes {list(allowed)} that "
                f"{model.model_dir} allows (its checkpoint's inference_allowed_mirroring_axes)."
            )
    return per_model


def plan_prediction(
    input_dir: str | os.PathLike[str] | None,
    *,
    model_dirs: Sequence[str | os.PathLike[str]] | None = None,
    spec: str | os.PathLike[str] | None = None,
    weights: Sequence[float] | None = None,
    label_weights: Sequence[Mapping[str | int, float]] | None = None,
    folds: Sequence[int | str] | None = None,
    checkpoint: str = DEFAULT_CHECKPOINT,
    step_size: float = 0.5,
    disable_tta: bool = False,
    mirror_axes: Sequence[int] | None = None,
    device: str = "cpu",
    allow_unsafe_checkpoints: bool = False,
) -> PredictPlan:
    """Validate members, weights, labels and images; load nothing heavy.

    ``input_dir`` ``None`` plans the members alone, without cases (in-memory prediction,
    :func:`~nnunet_ext.predict.folders.predict_arrays`).

    Returns:
        The plan.

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError: For any bad input (one line).
    """
    _check_options(model_dirs, spec, step_size, device)
    chosen_folds = fold_names(list(folds), "folds") if folds is not None else None
    checkpoint = checkpoint_name(checkpoint, "checkpoint")
    ensemble_spec, where = _member_spec(model_dirs, spec, weights, label_weights)
    members = tuple(
        _validate_members(ensemble_spec, where, chosen_folds, checkpoint, allow_unsafe_checkpoints)
    )
    ensemble_spec = ensemble_spec.with_input_dirs(
        [m.model_dir if isinstance(m, ModelMember) else m.path for m in members]
    )
    models = [m for m in members if isinstance(m, ModelMember)]
    label_spec = _common_labels(members)
    matrix = weight_matrix(ensemble_spec, label_spec)
    fusion_weights = normalize_weights(
        matrix, num_members=len(members), num_classes=matrix.shape[1]
    )
    channel_counts = {m.num_channels for m in models}
    if len(channel_counts) != 1:
        raise ValueError(
            "members must take the same input channels; got "
            + ", ".join(f"{m.model_dir.name}: {m.num_channels}" for m in models)
            + "."
        )
    cases: tuple[CaseInput, ...] = (
        ()
        if input_dir is None
        else list_image_cases(Path(input_dir), models[0].file_ending, models[0].num_channels)
    )
    _check_probability_members(members, cases, int(matrix.shape[1]))
    settings = {
        "step_size": float(step_size),
        "disable_tta": bool(disable_tta),
        "mirror_axes": _resolve_mirror_axes(mirror_axes, models),
        "device": device,
    }
    rules = label_rules(ensemble_spec, label_spec)
    # positional: every field has its own type, so mypy checks the order
    return PredictPlan(
        members,
        matrix,
        fusion_weights,
        ensemble_spec,
        label_spec,
        cases,
        settings,
        rules,
        allow_unsafe_checkpoints,
    )


def _check_options(
    model_dirs: Sequence[str | os.PathLike[str]] | None,
    spec: str | os.PathLike[str] | None,
    step_size: float,
    device: str,
) -> None:
    if (spec is None) == (not model_dirs):
        raise ValueError(
            "model_dirs and spec: give the members with exactly one of them; got "
            + ("both." if spec is not None else "neither.")
        )
    check_settings(step_size, device)


def check_settings(step_size: float, device: str | None) -> None:
    """Check the sliding-window step and the device (``None``: the engine picks).

    Raises:
        ValueError: Naming the parameter.

    Examples:
        >>> check_settings(0.5, None)
        >>> check_settings(0, "cpu")
        Traceback (most recent call last):
        ...
        ValueError: step_size must be in (0, 1]; got 0. nnU-Net uses 0.5.
    """
    number = isinstance(step_size, (int, float)) and not isinstance(step_size, bool)
    if not number or not 0 < step_size <= 1:
        raise ValueError(f"step_size must be in (0, 1]; got {step_size!r}. nnU-Net uses 0.5.")
    if device not in (None, "cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu, cuda or mps; got {device!r}.")


def _member_spec(
    model_dirs: Sequence[str | os.PathLike[str]] | None,
    spec: str | os.PathLike[str] | None,
    weights: Sequence[float] | None,
    label_weights: Sequence[Mapping[str | int, float]] | None,
) -> tuple[EnsembleSpec, str]:
    """The ensemble spec (model and probability members) and a prefix for messages."""
    if spec is not None:
        if weights is not None or label_weights is not None:
            raise ValueError("weights and spec cannot be combined; put the weights in the spec.")
        return load_predict_spec(spec), str(spec)
    assert model_dirs is not None  # for mypy; checked by _check_options
    ensemble_spec = EnsembleSpec.from_weights(
        model_dirs, weights=weights, label_weights=label_weights, models=True
    )
    return ensemble_spec, "model_dirs"


def _validate_members(
    ensemble_spec: EnsembleSpec,
    where_prefix: str,
    folds: tuple[str, ...] | None,
    checkpoint: str,
    allow_unsafe: bool,
) -> list[PredictMember]:
    """Validate every member (folders, folds, checkpoints); at least one model, no duplicates."""
    members: list[PredictMember] = []
    for index, entry in enumerate(ensemble_spec.members):
        where = f"{where_prefix} member {index}"
        folder = entry.path.resolve()
        if not entry.model:
            if not folder.is_dir():
                raise NotADirectoryError(f"{where}: probability folder not found: {folder}")
            members.append(ProbabilityMember(folder))
            continue
        members.append(
            ModelFolder.open(
                folder,
                folds=entry.folds or folds,
                checkpoint=entry.checkpoint or checkpoint,
                where=where,
                allow_unsafe=allow_unsafe,
            )
        )
    models = [m for m in members if isinstance(m, ModelMember)]
    if not models:
        raise ValueError(
            "the members must include at least one trained model folder; to fuse probability "
            "folders only, use nnunet-ext ensemble."
        )
    keys_seen = [(m.model_dir, m.folds, m.checkpoint) for m in models]
    if len(set(keys_seen)) != len(keys_seen):
        raise ValueError(
            "the members must be distinct; a model folder with the same folds and "
            "checkpoint is listed twice (give it a larger weight instead)."
        )
    return members


def _common_labels(members: Sequence[PredictMember]) -> LabelSpec:
    """The label spec every member shares (that of the first model)."""
    first = next(m for m in members if isinstance(m, ModelMember))
    label_spec = LabelSpec.from_dataset_json(
        first.dataset_json, source=str(first.model_dir / "dataset.json")
    )
    for other_member in members[1:]:
        if isinstance(other_member, ModelMember):
            other_json = other_member.dataset_json
            source = other_member.model_dir / "dataset.json"
        else:
            source = other_member.path / "dataset.json"
            if not source.is_file():
                raise FileNotFoundError(
                    f"{source} not found; nnUNetv2_predict copies dataset.json into every "
                    "prediction folder. Copy it from the model folder."
                )
            other_json = load_json_object(source)
        other = LabelSpec.from_dataset_json(other_json, source=str(source))
        if not other.same_labels(label_spec):
            raise ValueError(
                f"members must predict the same labels: {first.model_dir / 'dataset.json'} has "
                f"{label_spec.labels} but {source} has {other.labels}. Only models of the same "
                "labels can be fused."
            )
    return label_spec


def _check_probability_members(
    members: Sequence[PredictMember], cases: Sequence[CaseInput], num_classes: int
) -> None:
    """Probability members must hold every case, with the models' class count."""
    for probability_member in members:
        if not isinstance(probability_member, ProbabilityMember):
            continue
        files, _ = list_case_files(probability_member.path, ".npz")
        missing = [c.case_id for c in cases if c.case_id not in files]
        if missing:
            raise ValueError(
                f"probability folder {probability_member.path} lacks {len(missing)} case(s) of "
                "input_dir, "
                f"e.g. {missing[0]}.npz. Predict them there first, or leave that member out."
            )
        for case in cases:
            info = inspect_probabilities(files[case.case_id])
            if info.num_classes != num_classes:
                raise ValueError(
                    f"{files[case.case_id]} holds {info.num_classes} channels; the models "
                    f"predict {num_classes}."
                )
