"""The bundle's ``manifest.json`` and its checks: every file with its size and SHA-256.

A bundle is a zip in nnU-Net's pretrained-model layout (paths relative to ``nnUNet_results``,
as ``nnUNetv2_export_model_to_zip`` writes them) plus one folder of ours beside the models::

    Dataset501_X/nnUNetTrainer__nnUNetPlans__3d_fullres/{plans,dataset,dataset_fingerprint}.json
    Dataset501_X/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0/checkpoint_final.pth
    Dataset501_X/nnunet_ext_bundle/manifest.json
    Dataset501_X/nnunet_ext_bundle/ensemble_spec.json
    Dataset501_X/nnunet_ext_bundle/postprocessing_plan.json      (if a plan was exported)

The manifest lists every other entry; :func:`verify_bundle` refuses a bundle whose entries are
not exactly those files with those sizes and digests, naming the first file that differs.
Pure Python: ``nnunet-ext export --check`` never imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from nnunet_ext.io import InputError, to_strict_json
from nnunet_ext.io.checkpoints import read_checkpoint_bytes
from nnunet_ext.io.models import check_checkpoint_belongs
from nnunet_ext.io.schema import check_keys, describe, expect_int, expect_mapping, expect_str

__all__ = [
    "BUNDLE_FOLDER",
    "MANIFEST_NAME",
    "PLAN_NAME",
    "SCHEMA_VERSION",
    "SPEC_NAME",
    "ZIP_DATE_TIME",
    "BundleInfo",
    "extract_bundle",
    "json_bytes",
    "parse_manifest",
    "verify_bundle",
    "zip_info",
]

#: Version of the manifest layout written by this nnunet_ext.
SCHEMA_VERSION = 1
#: Our folder inside the dataset folder of the bundle.
BUNDLE_FOLDER = "nnunet_ext_bundle"
MANIFEST_NAME = "manifest.json"
SPEC_NAME = "ensemble_spec.json"
PLAN_NAME = "postprocessing_plan.json"
#: Timestamp of every entry (the earliest a zip can store), so the zip is byte-identical.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)

_TOP_KEYS = (
    "schema_version",
    "tool",
    "versions",
    "dataset",
    "members",
    "spec",
    "postprocessing_plan",
    "files",
)
_VERSION_KEYS = ("nnunet_ext", "nnunetv2", "torch")
_MEMBER_KEYS = (
    "folder",
    "source_folder",
    "trainer",
    "stock_trainer",
    "configuration",
    "folds",
    "checkpoints",
    "removed_bytes",
    "run_records",
)
_FILE_KEYS = ("path", "size", "sha256")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_FIX = "The bundle was changed after export or is damaged; export or download it again."


def zip_info(name: str) -> zipfile.ZipInfo:
    """A zip entry with fixed time, mode and system, deflated (for byte-identical zips)."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def json_bytes(data: Mapping[str, Any]) -> bytes:
    r"""Strict JSON with sorted keys and a final newline: the same data gives the same bytes.

    Examples:
        >>> json_bytes({"b": 1, "a": float("nan")})
        b'{\n  "a": null,\n  "b": 1\n}\n'
    """
    text = json.dumps(to_strict_json(dict(data)), indent=2, sort_keys=True, allow_nan=False)
    return (text + "\n").encode()


@dataclass(frozen=True)
class BundleInfo:
    """A verified bundle.

    Attributes:
        path: The zip.
        manifest: The parsed manifest.
        manifest_path: The manifest's entry name.
        root: Its dataset folder in the zip (``Dataset501_X``).
    """

    path: Path
    manifest: dict[str, Any]
    manifest_path: str
    root: str

    @property
    def spec_path(self) -> str:
        """Entry name of the ensemble spec."""
        return str(self.manifest["spec"])

    @property
    def plan_path(self) -> str | None:
        """Entry name of the postprocessing plan, or ``None``."""
        value = self.manifest["postprocessing_plan"]
        return None if value is None else str(value)

    def to_dict(self) -> dict[str, Any]:
        """Summary for ``--check`` and ``--json``."""
        files = self.manifest["files"]
        return {
            "bundle": str(self.path),
            "ok": True,
            "dataset": self.root,
            "files": len(files),
            "bytes": sum(int(f["size"]) for f in files),
            "members": [m["folder"] for m in self.manifest["members"]],
            "versions": self.manifest["versions"],
        }


def _safe_name(name: str, source: Path) -> str:
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or ".." in parts or not parts:
        raise InputError(
            source, "a zip of relative paths", f"the entry {name!r}", fix="Do not use this file."
        )
    return name


def parse_manifest(data: Any, *, source: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a parsed manifest strictly (unknown keys are errors) and return it.

    Raises:
        InputError: For a wrong ``schema_version``, an unknown or missing key, a bad value.

    Examples:
        >>> parse_manifest({"schema_version": 9}, source="m.json")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: m.json: schema_version must be 1; got 9. ...
    """
    top = expect_mapping(data, source=source, where=None)
    if top.get("schema_version") != SCHEMA_VERSION or isinstance(top.get("schema_version"), bool):
        raise InputError(
            source,
            str(SCHEMA_VERSION),
            repr(top.get("schema_version")),
            key="schema_version",
            fix="The bundle was made by another nnunet_ext version; use that version.",
        )
    check_keys(top, source=source, where=None, allowed=_TOP_KEYS, required=_TOP_KEYS)
    versions = expect_mapping(top["versions"], source=source, where="versions")
    check_keys(versions, source=source, where="versions", allowed=_VERSION_KEYS)
    expect_str(top["dataset"], source=source, where="dataset")
    expect_str(top["spec"], source=source, where="spec")
    if top["postprocessing_plan"] is not None:
        expect_str(top["postprocessing_plan"], source=source, where="postprocessing_plan")
    members = top["members"]
    if not isinstance(members, list) or not members:
        raise InputError(source, "a non-empty list", repr(members)[:80], key="members")
    for index, member in enumerate(members):
        where = f"members[{index}]"
        member = expect_mapping(member, source=source, where=where)
        check_keys(member, source=source, where=where, allowed=_MEMBER_KEYS, required=("folder",))
        expect_str(member["folder"], source=source, where=f"{where}.folder")
    files = top["files"]
    if not isinstance(files, list):
        raise InputError(source, "a list", repr(files)[:80], key="files")
    for index, entry in enumerate(files):
        where = f"files[{index}]"
        entry = expect_mapping(entry, source=source, where=where)
        check_keys(entry, source=source, where=where, allowed=_FILE_KEYS, required=_FILE_KEYS)
        expect_str(entry["path"], source=source, where=f"{where}.path")
        expect_int(entry["size"], source=source, where=f"{where}.size", minimum=0)
        digest = expect_str(entry["sha256"], source=source, where=f"{where}.sha256")
        if not _SHA_RE.fullmatch(digest):
            raise InputError(source, "64 lowercase hex digits", repr(digest), key=f"{where}.sha256")
    return dict(top)


def _open(file: Path) -> zipfile.ZipFile:
    if not file.is_file():
        raise FileNotFoundError(f"bundle not found: {file}. Give the zip written by export.")
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise InputError(
            file, "a zip file (an nnunet-ext bundle)", f"something else ({str(err)[:100]})"
        ) from err


def _read_manifest(archive: zipfile.ZipFile, file: Path) -> tuple[str, dict[str, Any]]:
    suffix = f"/{BUNDLE_FOLDER}/{MANIFEST_NAME}"
    names = [n for n in archive.namelist() if n.endswith(suffix) and n.count("/") == 2]
    if len(names) != 1:
        raise InputError(
            file,
            f"an nnunet-ext bundle with one DATASET{suffix}",
            f"{len(names)} such entries",
            fix="Give a zip written by 'nnunet-ext export'.",
        )
    name = names[0]
    try:
        raw = archive.read(name)
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        raise InputError(
            file, "a readable manifest", f"{name}: {str(err)[:100]}", fix=_FIX
        ) from err
    return name, parse_manifest(data, source=f"{file}: {name}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON token {name}")


def _check_entries(archive: zipfile.ZipFile, file: Path, info: BundleInfo) -> None:
    listed = [str(f["path"]) for f in info.manifest["files"]]
    present = [_safe_name(n, file) for n in archive.namelist() if not n.endswith("/")]
    extra = sorted(set(present) - set(listed) - {info.manifest_path})
    missing = sorted(set(listed) - set(present))
    if len(set(present)) != len(present):
        raise InputError(file, "a zip without duplicate entries", "duplicates", fix=_FIX)
    if extra or missing:
        name = (extra or missing)[0]
        found = "a file the manifest does not list" if extra else "missing"
        raise InputError(file, "listed in the manifest and present", found, key=name, fix=_FIX)
    root = info.root + "/"
    outside = [n for n in listed if not n.startswith(root)]
    if outside:
        raise InputError(file, f"inside {root}", "outside it", key=outside[0], fix=_FIX)


def _check_entry(
    archive: zipfile.ZipFile, file: Path, entry: Mapping[str, Any], dest: Path | None
) -> None:
    name = str(entry["path"])
    digest = hashlib.sha256()
    size = 0
    target = None if dest is None else dest / name
    try:
        with archive.open(name) as stream, _sink(target) as sink:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as err:
        raise InputError(
            file, "an intact entry", f"damage ({str(err)[:100]})", key=name, fix=_FIX
        ) from err
    if size != entry["size"]:
        raise InputError(
            file, f"{entry['size']} bytes (the manifest's size)", f"{size}", key=name, fix=_FIX
        )
    if digest.hexdigest() != entry["sha256"]:
        raise InputError(
            file,
            f"a file with the manifest's SHA-256 {entry['sha256'][:16]}...",
            f"{digest.hexdigest()[:16]}...",
            key=name,
            fix=_FIX,
        )


@contextlib.contextmanager
def _sink(target: Path | None) -> Iterator[BinaryIO | None]:
    if target is None:
        yield None
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as handle:
        yield handle


def _verify(path: str | os.PathLike[str], dest: Path | None) -> BundleInfo:
    file = Path(path)
    with _open(file) as archive:
        name, manifest = _read_manifest(archive, file)
        info = BundleInfo(file, manifest, name, name.split("/", 1)[0])
        if manifest["dataset"] != info.root:
            raise InputError(
                file, f"the dataset {info.root!r}", repr(manifest["dataset"]), key="dataset"
            )
        _check_entries(archive, file, info)
        for entry in manifest["files"]:
            _check_entry(archive, file, entry, dest)
        _check_closed(archive, file, info)
        _check_checkpoints(archive, file, info)
        if dest is not None:
            with archive.open(name) as stream, open(dest / name, "wb") as out:
                shutil.copyfileobj(stream, out)
    return info


def _check_closed(archive: zipfile.ZipFile, file: Path, info: BundleInfo) -> None:
    """The manifest's spec and plan are bundle files, and the spec names only its models.

    A bundle is closed: every member of its spec must be a model folder of the bundle (a
    relative ``model`` path that stays inside the dataset folder), never an absolute path, a
    ``..`` leaving it, or a probability folder elsewhere on disk.
    """
    listed = {str(f["path"]) for f in info.manifest["files"]}
    for key in ("spec", "postprocessing_plan"):
        value = info.manifest[key]
        if value is not None and value not in listed:
            raise InputError(
                file, "a file of the bundle", repr(value), key=f"{info.manifest_path}: {key}"
            )
    spec_name = info.spec_path
    source = f"{file}: {spec_name}"
    try:
        spec = json.loads(archive.read(spec_name).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(source, "a JSON object", f"unreadable JSON ({str(err)[:80]})") from err
    members = spec.get("members") if isinstance(spec, Mapping) else None
    if not isinstance(members, list) or not members:
        raise InputError(source, "a non-empty list", describe(members), key="members", fix=_FIX)
    folders = {f"{info.root}/{m['folder']}" for m in info.manifest["members"]}
    base = posixpath.dirname(spec_name)
    for index, member in enumerate(members):
        where = f"members[{index}]"
        model = member.get("model") if isinstance(member, Mapping) else None
        if not isinstance(model, str) or (isinstance(member, Mapping) and "path" in member):
            raise InputError(
                source, "a model folder of the bundle ('model')", "something else", key=where
            )
        target = posixpath.normpath(posixpath.join(base, model))
        if model.startswith(("/", "\\")) or "\\" in model or ":" in model or target not in folders:
            raise InputError(
                source,
                f"a model folder inside the bundle ({', '.join(sorted(folders))})",
                repr(model),
                key=f"{where}.model",
                fix="A bundle is closed: its spec names only its own model folders. " + _FIX,
            )


def _check_checkpoints(archive: zipfile.ZipFile, file: Path, info: BundleInfo) -> None:
    """Every checkpoint of the bundle is data (the checkpoint check) and fits its folder."""
    cache: dict[str, Any] = {}

    def member_json(name: str) -> dict[str, Any]:
        if name not in cache:
            data = json.loads(archive.read(name).decode("utf-8"), parse_constant=_no_constant)
            cache[name] = expect_mapping(data, source=f"{file}: {name}", where=None)
        return dict(cache[name])

    for entry in info.manifest["files"]:
        name = str(entry["path"])
        if not name.endswith(".pth"):
            continue
        parts = PurePosixPath(name).parts
        checkpoint = read_checkpoint_bytes(archive.read(name), source=f"{file}: {name}")
        if len(parts) != 4 or not parts[2].startswith("fold_"):
            raise InputError(file, "a checkpoint in DATASET/MODEL/fold_k/", repr(name), fix=_FIX)
        folder = posixpath.join(parts[0], parts[1])
        try:
            plans = member_json(f"{folder}/plans.json")
            dataset_json = member_json(f"{folder}/dataset.json")
        except KeyError as err:
            raise InputError(
                file, f"{folder}/plans.json and dataset.json", "missing", key=name, fix=_FIX
            ) from err
        except (UnicodeDecodeError, ValueError) as err:
            raise InputError(file, "readable JSON", str(err)[:80], key=folder, fix=_FIX) from err
        check_checkpoint_belongs(
            checkpoint, PurePosixPath(file.name) / folder, plans=plans, dataset_json=dataset_json
        )


def verify_bundle(path: str | os.PathLike[str]) -> BundleInfo:
    """Check a bundle without running it: manifest, entries, checkpoints, closed spec.

    Beyond every size and SHA-256 of the manifest (integrity against accidental damage, not a
    signature: anyone can recompute them), every checkpoint must pass the checkpoint check
    (:func:`~nnunet_ext.io.checkpoints.read_checkpoint`: data only, never code) and belong to
    its model folder, and the spec must name only the bundle's own model folders.

    Args:
        path: The bundle zip.

    Returns:
        The verified bundle.

    Raises:
        FileNotFoundError: If the zip does not exist.
        InputError: If anything differs; the message names the bundle and the first file.
    """
    return _verify(path, None)


def extract_bundle(path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> BundleInfo:
    """Verify a bundle while extracting it into ``dest`` (an ``nnUNet_results`` folder).

    The caller must discard ``dest`` when this raises: files extracted before the damaged one
    stay there.

    Raises:
        FileNotFoundError, InputError: As :func:`verify_bundle`.
    """
    target = Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    return _verify(path, target)
