"""What a trained model folder is, and whether a checkpoint belongs to it (torch-free).

A trained model folder is ``$nnUNet_results/DatasetX/TRAINER__PLANS__CONFIGURATION`` with
``dataset.json``, ``plans.json`` and ``fold_k/checkpoint_*.pth``. :class:`ModelFolder` is that
folder opened and validated in one place (predict, validate, export and bundles use it).
nnU-Net's predictor builds the network from the folder's name (the trainer class),
``plans.json`` (the configuration's ``architecture``) and ``dataset.json`` (input channels,
output labels), and then loads each checkpoint's weights into it: :func:`check_checkpoint_belongs`
refuses a checkpoint trained for another folder before any network is built.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_ext.io.checkpoints import Checkpoint, read_checkpoint
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.model_files import load_model_files
from nnunet_ext.io.plans import configuration_entry, configuration_patch_size

__all__ = [
    "DEFAULT_CHECKPOINT",
    "ModelFolder",
    "check_checkpoint_belongs",
    "checkpoint_name",
    "fold_names",
]

#: Checkpoint used when none is named (as ``nnUNetv2_predict``).
DEFAULT_CHECKPOINT = "checkpoint_final.pth"

_FOLD_RE = re.compile(r"fold_(\d+|all)")


@dataclass(frozen=True)
class ModelFolder:
    """A trained nnU-Net model folder and the folds/checkpoint to predict with.

    Open one with :meth:`open`: every file is checked there, once.

    Attributes:
        model_dir: ``TRAINER__PLANS__CONFIG`` folder (absolute).
        folds: Fold names (``"0"``, ``"1"``, ``"all"``) whose checkpoints are averaged.
        checkpoint: Checkpoint file name in each ``fold_k`` folder.
        configuration: nnU-Net configuration (from the folder name, checked in ``plans.json``).
        dataset_json: The model's ``dataset.json``.
        plans: The model's ``plans.json``.
        allowed_mirror_axes: The first fold checkpoint's ``inference_allowed_mirroring_axes``
            (``None``: not stored, nnU-Net then mirrors no axis).
        previous_stage: For a cascade stage (``3d_cascade_fullres``, whose configuration names a
            ``previous_stage``): the previous stage's folder beside it
            (``TRAINER__PLANS__3d_lowres``), opened with the same folds and checkpoint; its
            labels become this stage's extra input channels. ``None`` for a single stage.
    """

    model_dir: Path
    folds: tuple[str, ...]
    checkpoint: str
    configuration: str
    dataset_json: dict[str, Any] = field(compare=False, repr=False)
    plans: dict[str, Any] = field(compare=False, repr=False)
    allowed_mirror_axes: tuple[int, ...] | None = field(default=None, compare=False, repr=False)
    previous_stage: ModelFolder | None = field(default=None, compare=False, repr=False)

    @property
    def trainer(self) -> str:
        """The trainer class name (first part of the folder name)."""
        return self.model_dir.name.split("__")[0]

    @property
    def plans_name(self) -> str:
        """The plans identifier (middle part of the folder name)."""
        return self.model_dir.name.split("__")[1]

    @property
    def num_channels(self) -> int:
        """Input channels the model expects (``channel_names`` of ``dataset.json``)."""
        names = self.dataset_json.get("channel_names", self.dataset_json.get("modality", {}))
        return len(names)

    @property
    def file_ending(self) -> str:
        """Image and label file ending (``file_ending`` of ``dataset.json``, nnU-Net's default)."""
        return str(self.dataset_json.get("file_ending", ".nii.gz"))

    @property
    def patch_size(self) -> list[int]:
        """The configuration's ``patch_size`` (2 or 3 positive integers, checked on loading)."""
        return configuration_patch_size(
            self.plans, self.configuration, self.model_dir / "plans.json"
        )

    @property
    def spatial_dims(self) -> int:
        """2 or 3: the dimensionality of the model's patches."""
        return len(self.patch_size)

    @property
    def takes_volumes(self) -> bool:
        """Whether the model's patches span more than one slice (its images must be 3-D)."""
        return self.spatial_dims == 3 and self.patch_size[0] > 1

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the provenance file (a cascade stage adds its ``previous_stage``)."""
        entry: dict[str, Any] = {
            "model": str(self.model_dir),
            "folds": list(self.folds),
            "checkpoint": self.checkpoint,
            "configuration": self.configuration,
        }
        if self.previous_stage is not None:
            entry["previous_stage"] = self.previous_stage.to_dict()
        return entry

    @property
    def stages(self) -> tuple[ModelFolder, ...]:
        """The folders this member predicts with: the previous stage first, then itself."""
        before = () if self.previous_stage is None else self.previous_stage.stages
        return (*before, self)

    @classmethod
    def open(
        cls,
        model_dir: str | os.PathLike[str],
        *,
        folds: tuple[str, ...] | None = None,
        checkpoint: str = DEFAULT_CHECKPOINT,
        where: str = "model_dir",
        allow_unsafe: bool = False,
    ) -> ModelFolder:
        """Open and check a trained model folder: files, folds, every checkpoint.

        Args:
            model_dir: ``$nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG``.
            folds: Fold names (see :func:`fold_names`); default every ``fold_k`` (not
                ``fold_all``) that has the checkpoint, as nnU-Net's ``auto_detect_available_folds``.
            checkpoint: Checkpoint file name in each fold folder.
            where: The parameter (or spec member) that gave the folder, for messages.
            allow_unsafe: Accept checkpoints whose pickle names other globals too (loading
                them later runs code from the files).

        Returns:
            The folder, validated.

        Raises:
            NotADirectoryError, FileNotFoundError: A missing folder, fold or checkpoint.
            InputError, ValueError: A damaged file, a cascade stage without its previous
                stage, a checkpoint that is not data or does not belong to the folder (one
                line naming it).
        """
        folder = Path(model_dir).resolve()
        if not folder.is_dir():
            raise NotADirectoryError(
                f"{where}: model folder not found: {folder}. Give a trained model folder "
                "($nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG)."
            )
        dataset_json, plans = load_model_files(folder, where)
        configuration = _configuration(folder, plans, where)
        chosen = _folds(folder, folds, checkpoint, where)
        axes: list[tuple[int, ...] | None] = []
        for fold in chosen:
            file = _checkpoint_file(folder, fold, checkpoint, where)
            found = read_checkpoint(file, allow_unsafe=allow_unsafe)
            check_checkpoint_belongs(found, folder, plans=plans, dataset_json=dataset_json)
            axes.append(found.mirror_axes)
        stage = _previous_stage(folder, plans, configuration, chosen, checkpoint, where)
        previous = None
        if stage is not None:
            previous = cls.open(
                stage,
                folds=chosen,
                checkpoint=checkpoint,
                where=where,
                allow_unsafe=allow_unsafe,
            )
            if previous.previous_stage is not None:
                raise ValueError(
                    f"{where}: {previous.model_dir.name} is itself a cascade stage; nnU-Net's "
                    "cascade has two stages (3d_lowres, then 3d_cascade_fullres)."
                )
        return cls(
            folder, chosen, checkpoint, configuration, dataset_json, plans, axes[0], previous
        )


def _configuration(folder: Path, plans: Mapping[str, Any], where: str) -> str:
    parts = folder.name.split("__")
    configurations = plans.get("configurations")
    if len(parts) != 3 or not isinstance(configurations, dict):
        raise ValueError(
            f"{where}: model folder name must be TRAINER__PLANS__CONFIGURATION; got "
            f"{folder.name!r}."
        )
    configuration = parts[2]
    if configuration not in configurations:
        raise ValueError(
            f"{where}: configuration {configuration!r} (from the folder name) is not in "
            f"{folder / 'plans.json'}; known: {', '.join(configurations)}."
        )
    return configuration


def _previous_stage(
    folder: Path,
    plans: Mapping[str, Any],
    configuration: str,
    folds: tuple[str, ...],
    checkpoint: str,
    where: str,
) -> Path | None:
    """The previous stage's model folder of a cascade stage (checked to exist), else ``None``.

    nnU-Net trains a cascade stage on the previous stage's predictions of the same trainer and
    plans (``TRAINER__PLANS__PREVIOUS`` in the same dataset folder), and predicts it with that
    folder's labels (``nnUNetv2_predict -prev_stage_predictions``).
    """
    previous = plans["configurations"][configuration].get("previous_stage")
    if not previous:
        return None
    trainer, plans_name, _ = folder.name.split("__")
    stage = folder.parent / f"{trainer}__{plans_name}__{previous}"
    if previous == configuration or previous not in plans["configurations"]:
        raise ValueError(
            f"{where}: {configuration} names previous_stage {previous!r} in "
            f"{folder / 'plans.json'}; it must be another configuration of that file."
        )
    if not stage.is_dir():
        raise NotADirectoryError(
            f"{where}: {configuration} is a cascade stage; its previous stage must be trained "
            f"beside it: {stage} not found. Train it (nnUNetv2_train DATASET {previous} FOLD "
            f"-tr {trainer} -p {plans_name}, folds {', '.join(folds)}) or copy it there."
        )
    for fold in folds:
        if not (stage / f"fold_{fold}" / checkpoint).is_file():
            raise FileNotFoundError(
                f"{where}: the previous stage {stage.name} lacks fold {fold}'s {checkpoint}; "
                "a cascade stage predicts with the same folds of both stages. Train that fold "
                "of the previous stage, or choose folds both stages have (folds)."
            )
    return stage


def _present_folds(folder: Path) -> list[str]:
    return sorted(
        (p.name[len("fold_") :] for p in folder.glob("fold_*") if _FOLD_RE.fullmatch(p.name)),
        key=lambda f: (f == "all", int(f) if f.isdigit() else 0),
    )


def _folds(
    folder: Path, folds: tuple[str, ...] | None, checkpoint: str, where: str
) -> tuple[str, ...]:
    present = _present_folds(folder)
    if folds is not None:
        for fold in folds:
            if not (folder / f"fold_{fold}").is_dir():
                raise FileNotFoundError(
                    f"{where}: fold {fold} not found: {folder / f'fold_{fold}'} (folds present: "
                    f"{', '.join(present) or 'none'}). Choose existing folds (folds)."
                )
        return tuple(folds)
    # as nnU-Net's auto_detect_available_folds: each fold_k (not fold_all) with the checkpoint
    found = tuple(
        f for f in present if f != "all" and (folder / f"fold_{f}" / checkpoint).is_file()
    )
    if not found:
        raise FileNotFoundError(
            f"{where}: no fold of {folder} has {checkpoint} (folds present: "
            f"{', '.join(present) or 'none'}). Train the model to the end, or name another "
            "checkpoint (checkpoint, or 'checkpoint' in the spec)."
        )
    return found


def _checkpoint_file(folder: Path, fold: str, checkpoint: str, where: str) -> Path:
    file = folder / f"fold_{fold}" / checkpoint
    if not file.is_file():
        have = sorted(p.name for p in (folder / f"fold_{fold}").glob("checkpoint*.pth"))
        raise FileNotFoundError(
            f"{where}: checkpoint not found: {file} (that fold has "
            f"{', '.join(have) or 'no checkpoint'}). Finish its training or name another "
            "checkpoint."
        )
    return file


def fold_names(folds: Any, where: str) -> tuple[str, ...] | None:
    """Fold names (``"0"``, ``"all"``) from ints or strings, as nnU-Net's ``-f``.

    Raises:
        ValueError: Naming ``where``, for an empty list or a value that is not a fold.

    Examples:
        >>> fold_names([0, "1", "all"], "folds")
        ('0', '1', 'all')
        >>> fold_names(None, "folds") is None
        True
        >>> fold_names([True], "folds")
        Traceback (most recent call last):
        ...
        ValueError: folds must hold fold numbers or 'all'; got True.
    """
    if folds is None:
        return None
    if isinstance(folds, (str, int)) and not isinstance(folds, bool):
        folds = [folds]
    if not isinstance(folds, (list, tuple)) or not folds:
        raise ValueError(
            f"{where} must be a non-empty list of folds (0, 1, ..., 'all'); got {folds!r}."
        )
    names = []
    for fold in folds:
        name = str(fold)
        if isinstance(fold, bool) or not _FOLD_RE.fullmatch(f"fold_{name}"):
            raise ValueError(f"{where} must hold fold numbers or 'all'; got {fold!r}.")
        names.append(name)
    return tuple(names)


def checkpoint_name(value: Any, where: str) -> str:
    """A checkpoint file name (no folder part), as a fold folder holds it.

    Raises:
        ValueError: Naming ``where``, for anything else.

    Examples:
        >>> checkpoint_name("checkpoint_best.pth", "checkpoint")
        'checkpoint_best.pth'
        >>> checkpoint_name("../x.pth", "checkpoint")
        Traceback (most recent call last):
        ...
        ValueError: checkpoint must be a checkpoint file name such as 'checkpoint_final.pth' ...
    """
    if not isinstance(value, str) or not value or "/" in value or "\\" in value:
        raise ValueError(
            f"{where} must be a checkpoint file name such as 'checkpoint_final.pth' or "
            f"'checkpoint_best.pth'; got {value!r}."
        )
    return value


def _canonical(value: Any) -> str:
    """JSON text of a plans or dataset.json part (tuples as lists, keys sorted) for comparing."""
    return json.dumps(value, sort_keys=True, default=str)


def check_checkpoint_belongs(
    checkpoint: Checkpoint,
    model_dir: str | os.PathLike[str],
    *,
    plans: Mapping[str, Any],
    dataset_json: Mapping[str, Any],
) -> None:
    """Check that a checkpoint was trained for its model folder, before any network loads.

    The folder ``TRAINER__PLANS__CONFIGURATION`` and its ``plans.json`` and ``dataset.json``
    decide the network nnU-Net's predictor builds; the checkpoint's ``trainer_name``,
    ``init_args.configuration`` and, where stored, the ``architecture`` and ``patch_size`` of
    that configuration in ``init_args.plans`` and the labels and channels of
    ``init_args.dataset_json`` must agree with them (a 2d checkpoint copied into a 3d_fullres
    folder, a checkpoint of other plans, or an edited ``plans.json`` is refused).

    Args:
        checkpoint: As read by :func:`read_checkpoint`.
        model_dir: The model folder the checkpoint is in (``fold_k`` above it).
        plans: The folder's ``plans.json`` (validated).
        dataset_json: The folder's ``dataset.json`` (validated).

    Raises:
        InputError: Naming the checkpoint, the folder and what differs.
    """
    folder = Path(model_dir)
    parts = folder.name.split("__")
    trainer, configuration = (parts[0], parts[2]) if len(parts) == 3 else ("", "")
    fix = (
        f"The checkpoint belongs to another model; copy the checkpoint {folder.name} was "
        "trained with, or put this one in its own model folder."
    )
    for key, what, ours, theirs in (
        ("trainer_name", "trainer", trainer, checkpoint.trainer_name),
        ("init_args.configuration", "configuration", configuration, checkpoint.configuration),
    ):
        if theirs != ours:
            raise InputError(
                checkpoint.source,
                f"{ours!r}, the {what} of its folder {folder}",
                repr(theirs),
                key=key,
                fix=fix,
            )
    for key, theirs, ours in _differences(checkpoint, configuration, plans, dataset_json):
        file = folder / ("plans.json" if key.startswith("plans") else "dataset.json")
        raise InputError(
            checkpoint.source,
            f"{ours}, as in {file}",
            theirs,
            key=f"init_args.{key}",
            fix=fix,
        )


def _differences(
    checkpoint: Checkpoint,
    configuration: str,
    plans: Mapping[str, Any],
    dataset_json: Mapping[str, Any],
) -> list[tuple[str, str, str]]:
    """``(key path, checkpoint's value, folder's value)`` for each network part that differs."""
    out: list[tuple[str, str, str]] = []
    stored_plans = checkpoint.init_args.get("plans")
    if isinstance(stored_plans, Mapping):
        for key in ("architecture", "patch_size"):
            try:
                _, theirs = configuration_entry(stored_plans, configuration, key, "init_args.plans")
            except InputError:
                return [(f"plans.configurations.{configuration}", "nothing", "an object")]
            _, ours = configuration_entry(plans, configuration, key, "plans.json")
            where = f"plans.configurations.{configuration}.{key}"
            out += _first_difference(theirs.get(key, _MISSING), ours.get(key, _MISSING), where)
    stored_dataset = checkpoint.init_args.get("dataset_json")
    if isinstance(stored_dataset, Mapping):
        for key in ("labels", "regions_class_order", "channel_names", "modality"):
            out += _first_difference(
                stored_dataset.get(key, _MISSING),
                dataset_json.get(key, _MISSING),
                f"dataset_json.{key}",
            )
    return out


#: A key absent from one side (``None`` is a value: a key set to null differs from no key).
_MISSING = object()


def _first_difference(theirs: Any, ours: Any, where: str) -> list[tuple[str, str, str]]:
    """The first key path at which two JSON-like values differ, with both values (or none)."""
    if theirs is ours:  # the same object, or absent from both sides
        return []
    if theirs is _MISSING or ours is _MISSING:
        return [(where, _text(theirs), _text(ours))]
    if _canonical(theirs) == _canonical(ours):
        return []
    if isinstance(theirs, Mapping) and isinstance(ours, Mapping):
        for key in sorted(set(theirs) | set(ours), key=str):
            found = _first_difference(
                theirs.get(key, _MISSING), ours.get(key, _MISSING), f"{where}.{key}"
            )
            if found:
                return found
    if isinstance(theirs, (list, tuple)) and isinstance(ours, (list, tuple)):
        if len(theirs) == len(ours):
            for index, (a, b) in enumerate(zip(theirs, ours, strict=True)):
                found = _first_difference(a, b, f"{where}[{index}]")
                if found:
                    return found
    return [(where, _text(theirs), _text(ours))]


def _text(value: Any) -> str:
    text = "absent" if value is _MISSING else _canonical(value)
    return text if len(text) <= 60 else text[:57] + "..."
