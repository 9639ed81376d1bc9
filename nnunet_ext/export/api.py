"""Export trained model folders, an ensemble spec and a postprocessing plan as one bundle zip.

:func:`export_bundle` validates every input first (folders, folds, checkpoints, spec, plan,
trainer renames), then writes the zip under a temporary name, verifies it with
:func:`~nnunet_ext.io.bundle.verify_bundle` and renames it: on any error no zip is left.
Checkpoints are rewritten by :mod:`nnunet_ext.export.engine` (imported only here, when
exporting): optimizer and grad-scaler state removed, ``trainer_name`` set to the stock trainer.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nnunet_ext import __version__
from nnunet_ext.ensemble.spec import EnsembleSpec
from nnunet_ext.io import atomic_path
from nnunet_ext.io.bundle import (
    BUNDLE_FOLDER,
    MANIFEST_NAME,
    PLAN_NAME,
    SCHEMA_VERSION,
    SPEC_NAME,
    json_bytes,
    verify_bundle,
    zip_info,
)
from nnunet_ext.io.models import DEFAULT_CHECKPOINT, ModelFolder, fold_names
from nnunet_ext.io.outputs import Output, check_outputs, guard_outputs
from nnunet_ext.postprocess.plan import load_plan

__all__ = ["DEFAULT_CHECKPOINT", "ExportSummary", "export_bundle"]

logger = logging.getLogger(__name__)

#: Files of the model folder copied beside the folds (as nnU-Net's own export).
MODEL_FILES = ("dataset.json", "plans.json", "dataset_fingerprint.json")
#: Per fold, with ``include_logs``.
LOG_PATTERNS = ("training_log_*.txt", "progress.png", "debug.json", "nnunet_ext_training.json")
_RUN_RECORD = "nnunet_ext_training.json"


@dataclass(frozen=True)
class _Member:
    model_dir: Path
    trainer: str
    plans: str
    configuration: str
    folds: tuple[str, ...]
    checkpoints: tuple[str, ...]
    stock: str = ""

    @property
    def folder(self) -> str:
        return f"{self.stock}__{self.plans}__{self.configuration}"


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_bundle` wrote.

    Attributes:
        output: The bundle zip.
        bundle_bytes: Its size.
        folder_bytes: Size of every file in the exported model folders (all folds, logs and
            validation outputs included): what copying the folders would take.
        checkpoint_bytes: Size of the source checkpoints that were exported.
        removed_bytes: Size of the optimizer and grad-scaler state left out (``torch.save``
            of those values alone, summed over checkpoints).
        members: Source folder name -> exported folder name.
    """

    output: Path
    bundle_bytes: int
    folder_bytes: int
    checkpoint_bytes: int
    removed_bytes: int
    members: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``--json``)."""
        return {
            "schema_version": 1,
            "output": str(self.output),
            "bundle_bytes": self.bundle_bytes,
            "folder_bytes": self.folder_bytes,
            "checkpoint_bytes": self.checkpoint_bytes,
            "removed_bytes": self.removed_bytes,
            "members": dict(self.members),
        }


def _plan_member(
    model_dir: Path,
    folds: Sequence[int | str] | None,
    checkpoints: Sequence[str],
    index: int,
    allow_unsafe: bool,
) -> list[_Member]:
    """The member's folder, and for a cascade stage its previous stage's folder before it."""
    where = f"model_dirs member {index}"
    chosen = fold_names(list(folds), "folds") if folds is not None else None
    model = ModelFolder.open(
        model_dir, folds=chosen, checkpoint=checkpoints[0], where=where, allow_unsafe=allow_unsafe
    )
    for name in checkpoints[1:]:  # every other exported checkpoint, checked the same way
        ModelFolder.open(
            model.model_dir,
            folds=model.folds,
            checkpoint=name,
            where=where,
            allow_unsafe=allow_unsafe,
        )
    for stage in model.stages:
        for name in MODEL_FILES:
            file = stage.model_dir / name
            if not file.is_file():
                raise FileNotFoundError(
                    f"{where}: {file} not found; export needs it. Copy it from the training's "
                    "output folder (nnUNetv2_train writes it)."
                )
    return [
        _Member(
            stage.model_dir,
            stage.trainer,
            stage.plans_name,
            stage.configuration,
            stage.folds,
            tuple(checkpoints),
        )
        for stage in model.stages
    ]


def _bundle_spec(spec: Path | None, members: Sequence[_Member]) -> dict[str, Any]:
    """The predict spec of the bundle: the spec's weights and rules, members by position.

    Written through :class:`~nnunet_ext.ensemble.spec.EnsembleSpec`: every member becomes a
    ``model`` member naming its exported folder (``../FOLDER``, relative to the spec's folder
    in the bundle), its folds and the checkpoint the bundle predicts with.
    """
    if spec is None:
        weights = EnsembleSpec.from_weights([m.model_dir for m in members], models=True)
    else:
        weights = EnsembleSpec.load(spec, models=True)
        if len(weights.members) != len(members):
            raise ValueError(
                f"spec {spec} has {len(weights.members)} member(s); model_dirs gives "
                f"{len(members)}. The spec's members are matched to model_dirs by position; give "
                "one model folder per member, in the spec's order."
            )
    bundle = EnsembleSpec(
        tuple(
            replace(
                weight,
                path=Path(f"../{member.folder}"),
                model=True,
                folds=member.folds,
                checkpoint=member.checkpoints[0],
            )
            for member, weight in zip(members, weights.members, strict=True)
        ),
        weights.rules,
    )
    return bundle.to_dict()


def _rename_trainers(members: list[_Member]) -> list[_Member]:
    from nnunet_ext.export.engine import stock_trainer_name

    renamed = [
        _Member(m.model_dir, m.trainer, m.plans, m.configuration, m.folds, m.checkpoints, stock)
        for m in members
        for stock in [stock_trainer_name(m.trainer)]
    ]
    seen: dict[str, Path] = {}
    for member in renamed:
        if member.folder in seen:
            raise ValueError(
                f"model_dirs {seen[member.folder]} and {member.model_dir} would both be exported "
                f"as {member.folder}; stock nnU-Net finds one model per folder name. Export "
                "them into separate bundles."
            )
        seen[member.folder] = member.model_dir
    datasets = sorted({m.model_dir.parent.name for m in renamed})
    if len(datasets) != 1:
        raise ValueError(
            f"model_dirs folders must belong to one dataset; got {', '.join(datasets)}. "
            "A bundle installs into one nnUNet_results/DatasetXXX_Name folder."
        )
    return renamed


def _fold_extras(fold_dir: Path, include_logs: bool, include_validation: bool) -> list[Path]:
    files: list[Path] = []
    if include_logs:
        files += [p for pattern in LOG_PATTERNS for p in fold_dir.glob(pattern) if p.is_file()]
    validation = fold_dir / "validation"
    if include_validation and validation.is_dir():
        files += [
            p
            for p in validation.iterdir()
            if p.is_file() and p.suffix not in (".npz", ".pkl") and not p.name.startswith(".")
        ]
    return files


def _entries(
    members: Sequence[_Member], dataset: str, include_logs: bool, include_validation: bool
) -> dict[str, tuple[Path, _Member | None]]:
    """Entry name -> (source file, member if it is a checkpoint to rewrite)."""
    entries: dict[str, tuple[Path, _Member | None]] = {}
    for member in members:
        base = f"{dataset}/{member.folder}"
        for name in MODEL_FILES:
            entries[f"{base}/{name}"] = (member.model_dir / name, None)
        for fold in member.folds:
            fold_dir = member.model_dir / f"fold_{fold}"
            for checkpoint in member.checkpoints:
                entries[f"{base}/fold_{fold}/{checkpoint}"] = (fold_dir / checkpoint, member)
            for extra in _fold_extras(fold_dir, include_logs, include_validation):
                relative = extra.relative_to(fold_dir).as_posix()
                entries[f"{base}/fold_{fold}/{relative}"] = (extra, None)
    return entries


def _run_records(member: _Member) -> dict[str, Any]:
    from nnunet_ext.trainers.record import read_run_record

    records: dict[str, Any] = {}
    for fold in member.folds:
        file = member.model_dir / f"fold_{fold}" / _RUN_RECORD
        records[fold] = read_run_record(file) if file.is_file() else None
    return records


def _versions() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"nnunet_ext": __version__, "nnunetv2": version("nnunetv2"), "torch": version("torch")}


class _Writer:
    """Writes entries in order and records size and SHA-256 of each."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.files: list[dict[str, Any]] = []

    def add(self, name: str, data: bytes) -> None:
        self.archive.writestr(zip_info(name), data)
        digest = hashlib.sha256(data).hexdigest()
        self.files.append({"path": name, "size": len(data), "sha256": digest})


def _write_bundle(
    target: Path,
    members: Sequence[_Member],
    entries: dict[str, tuple[Path, _Member | None]],
    extra: dict[str, bytes],
    manifest: dict[str, Any],
    allow_unsafe: bool,
) -> tuple[int, int]:
    """Write the zip (entries sorted, the manifest last); return (checkpoint, removed) bytes."""
    from nnunet_ext.export.engine import slim_checkpoint

    removed: dict[str, int] = {m.folder: 0 for m in members}
    source_bytes = 0
    with zipfile.ZipFile(target, "w") as archive:
        writer = _Writer(archive)
        for name in sorted({*entries, *extra}):
            if name in extra:
                writer.add(name, extra[name])
                continue
            source, member = entries[name]
            if member is None:
                writer.add(name, source.read_bytes())
                continue
            slim = slim_checkpoint(
                source,
                expected_trainer=member.trainer,
                trainer_name=member.stock,
                allow_unsafe=allow_unsafe,
            )
            writer.add(name, slim.data)
            source_bytes += slim.original_size
            removed[member.folder] += sum(slim.removed_bytes.values())
        for entry in manifest["members"]:
            entry["removed_bytes"] = removed[entry["folder"]]
        manifest["files"] = writer.files
        dataset = manifest["dataset"]
        archive.writestr(
            zip_info(f"{dataset}/{BUNDLE_FOLDER}/{MANIFEST_NAME}"), json_bytes(manifest)
        )
    return source_bytes, sum(removed.values())


def _manifest(members: Sequence[_Member], dataset: str, has_plan: bool) -> dict[str, Any]:
    ours = f"{dataset}/{BUNDLE_FOLDER}"
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "nnunet_ext.export",
        "versions": _versions(),
        "dataset": dataset,
        "members": [
            {
                "folder": m.folder,
                "source_folder": m.model_dir.name,
                "trainer": m.trainer,
                "stock_trainer": m.stock,
                "configuration": m.configuration,
                "folds": list(m.folds),
                "checkpoints": list(m.checkpoints),
                "removed_bytes": 0,
                "run_records": _run_records(m),
            }
            for m in members
        ],
        "spec": f"{ours}/{SPEC_NAME}",
        "postprocessing_plan": f"{ours}/{PLAN_NAME}" if has_plan else None,
        "files": [],
    }


def _folder_bytes(members: Sequence[_Member]) -> int:
    return sum(p.stat().st_size for m in members for p in m.model_dir.rglob("*") if p.is_file())


def export_bundle(
    model_dirs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    spec: str | os.PathLike[str] | None = None,
    plan: str | os.PathLike[str] | None = None,
    folds: Sequence[int | str] | None = None,
    checkpoints: Sequence[str] = (DEFAULT_CHECKPOINT,),
    include_logs: bool = False,
    include_validation: bool = False,
    overwrite: bool = False,
    allow_unsafe_checkpoints: bool = False,
) -> ExportSummary:
    """Export trained model folders as a bundle that stock nnU-Net installs and predicts with.

    Args:
        model_dirs: Trained model folders (``$nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG``),
            all of one dataset.
        output: The bundle zip to write (``.zip``).
        spec: Ensemble spec (``nnunet-ext tune`` output or a predict spec) whose weights and
            rules the bundle keeps; its members are matched to ``model_dirs`` by position.
            Default: equal weights.
        plan: Postprocessing plan (``nnunet-ext postprocess determine`` output) to include.
        folds: Folds of every model (default: every ``fold_k`` with the first checkpoint).
        checkpoints: Checkpoint files exported per fold; the first is the one the bundle's
            spec predicts with.
        include_logs: Also export training logs, ``progress.png``, ``debug.json`` and run records.
        include_validation: Also export ``fold_k/validation`` (without ``.npz``/``.pkl``).
        overwrite: Replace an existing ``output``.
        allow_unsafe_checkpoints: Read source checkpoints whose pickle names other globals
            too, with ``torch.load(weights_only=False)`` (runs code from them). The bundle's
            checkpoints are rewritten as weights only either way.

    Returns:
        Sizes and the member names.

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError, FileExistsError: For bad input
            (before anything is written), including a trainer that changes inference.
    """
    if not model_dirs:
        raise ValueError("model_dirs must give at least one trained model folder; got none.")
    names = list(checkpoints)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"checkpoints must name distinct checkpoint files; got {names}.")
    target = Path(output)
    outputs = [Output(target, "output", (".zip",))]
    inputs = [p for p in (*model_dirs, spec, plan) if p is not None]
    check_outputs(outputs, inputs=inputs, overwrite=overwrite)
    stages = [
        _plan_member(Path(d), folds, names, index, allow_unsafe_checkpoints)
        for index, d in enumerate(model_dirs)
    ]
    # the spec's members are the last stage of each; a cascade's previous stage travels along
    spec_members = [member[-1] for member in stages]
    _bundle_spec(None if spec is None else Path(spec), spec_members)  # checked before torch loads
    plan_data = None
    if plan is not None:
        plan_data = load_plan(plan).to_dict()
    members = _rename_trainers(list(dict.fromkeys(s for member in stages for s in member)))
    renamed = {m.model_dir: m for m in members}
    dataset = members[0].model_dir.parent.name
    entries = _entries(members, dataset, include_logs, include_validation)
    bundle_spec = _bundle_spec(
        None if spec is None else Path(spec), [renamed[m.model_dir] for m in spec_members]
    )
    extra = {f"{dataset}/{BUNDLE_FOLDER}/{SPEC_NAME}": json_bytes(bundle_spec)}
    if plan_data is not None:
        extra[f"{dataset}/{BUNDLE_FOLDER}/{PLAN_NAME}"] = json_bytes(plan_data)
    manifest = _manifest(members, dataset, plan_data is not None)
    with guard_outputs(outputs, inputs=inputs, overwrite=overwrite, command="nnunet-ext export"):
        with atomic_path(target) as tmp:
            checkpoint_bytes, removed = _write_bundle(
                tmp, members, entries, extra, manifest, allow_unsafe_checkpoints
            )
            verify_bundle(tmp)
    summary = ExportSummary(
        output=target,
        bundle_bytes=target.stat().st_size,
        folder_bytes=_folder_bytes(members),
        checkpoint_bytes=checkpoint_bytes,
        removed_bytes=removed,
        members={m.model_dir.name: m.folder for m in members},
    )
    logger.info("wrote %s (%d bytes)", target, summary.bundle_bytes)
    return summary
