"""Read nnU-Net checkpoints as data: the pickle is checked, without torch, before torch sees it.

``torch.save`` writes a zip whose ``<name>/data.pkl`` is a pickle, and nnU-Net loads it with
``torch.load(weights_only=False)``: a pickle can call any function, so every model folder from
someone else would be code. :func:`read_checkpoint` reads that pickle with a restricted reader
that calls nothing: every global it names must be one of :data:`CHECKPOINT_GLOBALS` (what
nnU-Net 2.x checkpoints really hold: tensor rebuild functions and storages, ``OrderedDict``,
``torch.device``, NumPy scalars and dtypes, ``datetime``, builtin containers), and tensors become
:class:`TensorInfo` (shape and dtype, no data). The torch side then loads the same file with
``torch.load(weights_only=True)`` under ``torch.serialization.safe_globals`` of that same list
(:func:`nnunet_ext.trainers.checkpoints.load_checkpoint`), so the check and the load cannot
disagree.

The allowlist was built from nnU-Net 2.8's ``nnUNetTrainer.save_checkpoint`` (network and
optimizer state dicts, grad-scaler state, the logger's lists of floats and NumPy floats,
``_best_ema``, ``init_args`` with plans, dataset.json and a ``torch.device``) and the checkpoints
of every configuration our test suite trains (2d, 3d_fullres, ``checkpoint_best_<label>.pth``,
cooldown checkpoints). Anything else (``os.system``, ``builtins.eval``, a trainer class) is
refused with one line naming the file and the global. ``allow_unsafe=True`` is the one opt-out,
for a file its user trusts: it reads the structure with inert stand-ins for unknown globals, and
the torch side then loads with ``weights_only=False`` (that runs code from the file).
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import describe, invalid_key
from nnunet_ext.io.zips import verify_zip_members

__all__ = [
    "CHECKPOINT_GLOBALS",
    "Checkpoint",
    "TensorInfo",
    "UnsafeCheckpointError",
    "read_checkpoint",
    "read_checkpoint_bytes",
]

_STORAGE_TYPES = tuple(
    f"torch.{kind}Storage"
    for kind in (
        "Float",
        "Double",
        "Half",
        "BFloat16",
        "Long",
        "Int",
        "Short",
        "Char",
        "Byte",
        "Bool",
    )
)

#: NumPy's numeric and boolean dtype classes (torch's loader must be allowed to build them).
_NUMPY_DTYPES = tuple(
    f"numpy.dtypes.{kind}DType"
    for kind in (
        *("Bool", "Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64"),
        *("Byte", "UByte", "Short", "UShort", "Int", "UInt", "Long", "ULong", "LongLong"),
        *("ULongLong", "Float16", "Float32", "Float64", "LongDouble"),
        *("Complex64", "Complex128", "CLongDouble"),
    )
)

#: Every global an nnU-Net 2.x checkpoint may name, as ``module.name`` (see the module doc).
CHECKPOINT_GLOBALS: tuple[str, ...] = (
    "builtins.set",
    "builtins.frozenset",
    "builtins.complex",
    "builtins.bytearray",
    "collections.OrderedDict",
    "_codecs.encode",
    "datetime.datetime",
    "datetime.date",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    *_NUMPY_DTYPES,
    "torch.device",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    *_STORAGE_TYPES,
)

#: Python-side globals the restricted reader resolves to the real (side-effect free) object.
_REAL_MODULES = ("builtins", "collections", "_codecs", "datetime", "numpy")

#: The first bytes of a checkpoint in torch's legacy (pre-1.6, non-zip) format.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"

_CHECKPOINT_FIX = (
    "This is not a checkpoint nnUNetv2_train wrote (checkpoint_final.pth / checkpoint_best.pth "
    "hold network_weights, trainer_name and init_args); copy the fold's checkpoint again or "
    "retrain that fold."
)
_UNSAFE_FIX = (
    "Loading it would run code from the file: do not use it. If you made it yourself and trust "
    "it, allow_unsafe_checkpoints=True loads it anyway (that runs code from the file)."
)


class UnsafeCheckpointError(InputError):
    """A checkpoint's pickle names a global outside :data:`CHECKPOINT_GLOBALS`."""


@dataclass(frozen=True)
class TensorInfo:
    """A tensor of a checkpoint as the restricted reader sees it: shape and dtype, no data.

    Attributes:
        shape: The tensor's size.
        dtype: The storage type's name (``"FloatStorage"``).
    """

    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _Storage:
    dtype: str


class _Inert:
    """Stand-in for any global outside the list (``allow_unsafe`` only).

    Called, it builds an inert object and calls nothing; its state is ignored.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Inert)  # inert objects hold nothing: all alike

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "Inert()"


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`read_checkpoint` found in a checkpoint (no tensor data).

    Attributes:
        source: The file (or bundle entry) it was read from, for messages.
        trainer_name: ``trainer_name``: the trainer class that wrote it.
        configuration: ``init_args.configuration``.
        init_args: ``init_args`` (plans, dataset.json, fold, ...; a ``torch.device`` as its text).
        weight_shapes: ``network_weights``: parameter name -> shape.
        mirror_axes: ``inference_allowed_mirroring_axes`` (``None`` when absent).
        unsafe_globals: Globals outside :data:`CHECKPOINT_GLOBALS` (only with ``allow_unsafe``).
    """

    source: str
    trainer_name: str
    configuration: str
    init_args: Mapping[str, Any] = field(repr=False)
    weight_shapes: Mapping[str, tuple[int, ...]] = field(repr=False)
    mirror_axes: tuple[int, ...] | None = None
    unsafe_globals: tuple[str, ...] = ()


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _CheckpointUnpickler(pickle.Unpickler):
    """Resolves only :data:`CHECKPOINT_GLOBALS`; torch's are stand-ins that build no tensor."""

    def __init__(self, stream: IO[bytes], *, allow_unsafe: bool) -> None:
        super().__init__(stream)
        self.allow_unsafe = allow_unsafe
        self.unsafe: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        # torch.save writes protocol 2, which spells globals by their Python 2 names
        # (``__builtin__.set``); read them as the unpickler does, then check the name
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if full not in CHECKPOINT_GLOBALS:
            if not self.allow_unsafe:
                raise _RefusedGlobal(full)
            self.unsafe.append(full)
            return _Inert
        if module.startswith(_REAL_MODULES):
            return super().find_class(module, name)
        if full in _STORAGE_TYPES:
            return _StorageType(name)
        # bound methods: a pickle cannot set attributes on them (BUILD fails)
        stubs: dict[str, Callable[..., Any]] = {
            "torch.device": self._device,
            "torch._utils._rebuild_tensor_v2": self._rebuild_tensor,
            "torch._utils._rebuild_parameter": self._rebuild_parameter,
        }
        return stubs[full]

    def persistent_load(self, pid: Any) -> _Storage:
        if (
            isinstance(pid, tuple)
            and len(pid) >= 2
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
        ):
            return _Storage(pid[1].name)
        raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:60]}")

    def _device(self, *args: Any) -> str:
        return ":".join(str(a) for a in args)

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, *rest: Any) -> TensorInfo:
        if not isinstance(storage, _Storage) or not isinstance(size, tuple):
            raise pickle.UnpicklingError("a tensor without a storage or size")
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in size):
            raise pickle.UnpicklingError(f"a tensor of size {size!r}")
        return TensorInfo(tuple(size), storage.dtype)

    def _rebuild_parameter(self, data: Any, *rest: Any) -> Any:
        return data


def read_checkpoint(path: str | os.PathLike[str], *, allow_unsafe: bool = False) -> Checkpoint:
    """Check a checkpoint file without torch and without running anything in it.

    Checked: a complete zip as ``torch.save`` writes it (every member's CRC-32), whose
    ``<name>/data.pkl`` names only :data:`CHECKPOINT_GLOBALS` and is a dict with what nnU-Net's
    predictor reads: ``network_weights`` (a non-empty mapping of tensors), ``trainer_name`` (a
    string) and ``init_args`` with a string ``configuration``.

    Args:
        path: The ``.pth`` file.
        allow_unsafe: Read a file that names other globals too (the caller then loads it with
            ``weights_only=False``: that runs code from the file).

    Returns:
        The checkpoint's trainer, configuration, ``init_args`` and weight shapes.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        UnsafeCheckpointError: Naming the file and the global, if it names one outside the list.
        InputError: Naming the file, when it is not a complete nnU-Net checkpoint.

    Examples:
        >>> import tempfile
        >>> empty = Path(tempfile.mkdtemp(), "checkpoint_final.pth")
        >>> empty.touch()
        >>> read_checkpoint(empty)
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: ...checkpoint_final.pth must be a complete PyTorch ...
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint not found: {file}")
    with open(file, "rb") as handle:
        legacy = handle.read(len(_LEGACY_TORCH_MAGIC)) == _LEGACY_TORCH_MAGIC
    if legacy:
        raise InputError(
            file,
            "a checkpoint in the zip format torch.save writes (PyTorch 1.6 and later)",
            "the legacy pre-1.6 format",
            fix="Load and save it again with a current PyTorch, or retrain that fold.",
        )
    return _read_zip(file, str(file), allow_unsafe)


def read_checkpoint_bytes(data: bytes, *, source: str, allow_unsafe: bool = False) -> Checkpoint:
    """:func:`read_checkpoint` for a checkpoint held in memory (a bundle entry).

    Args:
        data: The ``.pth`` file's bytes.
        source: What to call it in messages (``bundle.zip: Dataset/.../checkpoint_final.pth``).
        allow_unsafe: As :func:`read_checkpoint`.

    Raises:
        UnsafeCheckpointError, InputError: As :func:`read_checkpoint`, naming ``source``.

    Examples:
        >>> read_checkpoint_bytes(b"junk", source="b.zip: fold_0/checkpoint_final.pth")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: b.zip: fold_0/checkpoint_final.pth must be a complete ...
    """
    return _read_zip(io.BytesIO(data), source, allow_unsafe)


def _read_zip(zip_file: Path | IO[bytes], source: str, allow_unsafe: bool) -> Checkpoint:
    """Open the checkpoint's zip, CRC-check every member, read its pickle (file or bytes alike)."""
    expected = "a complete PyTorch checkpoint (the zip archive torch.save writes)"
    fix = "The file is truncated or corrupt; copy it again or retrain that fold."
    try:
        archive = zipfile.ZipFile(zip_file)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as err:
        raise InputError(source, expected, f"something else ({str(err)[:80]})", fix=fix) from err
    with archive:
        try:
            verify_zip_members(archive, source)
        except InputError as err:
            raise InputError(source, expected, err.found, fix=fix) from err
        return _read_archive(archive, source, allow_unsafe)


def _read_archive(archive: zipfile.ZipFile, source: str, allow_unsafe: bool) -> Checkpoint:
    pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise InputError(
            source,
            "a PyTorch checkpoint (a zip with one <name>/data.pkl)",
            f"{len(pickles)} such members",
            fix=_CHECKPOINT_FIX,
        )
    try:
        data = archive.read(pickles[0])
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
        RuntimeError,
        zlib.error,
    ) as err:
        raise InputError(
            source, "an intact checkpoint", f"{pickles[0]} damaged", fix=_CHECKPOINT_FIX
        ) from err
    unpickler = _CheckpointUnpickler(io.BytesIO(data), allow_unsafe=allow_unsafe)
    try:
        contents = unpickler.load()
    except _RefusedGlobal as err:
        raise UnsafeCheckpointError(
            source,
            "a checkpoint holding only tensors, numbers, strings and containers (the globals "
            "nnU-Net checkpoints name)",
            f"the global {err.name}",
            fix=_UNSAFE_FIX,
        ) from err
    except Exception as err:  # a damaged pickle raises many different types
        raise InputError(
            source,
            "a readable checkpoint pickle",
            f"{type(err).__name__} in {pickles[0]}",
            fix=_CHECKPOINT_FIX,
        ) from err
    return _checkpoint(contents, source, tuple(dict.fromkeys(unpickler.unsafe)))


def _checkpoint(contents: Any, source: str, unsafe: tuple[str, ...]) -> Checkpoint:
    """The checks of :func:`read_checkpoint` on the unpickled dict."""
    if not isinstance(contents, dict):
        raise InputError(
            source, "an nnU-Net checkpoint dict", describe(contents), fix=_CHECKPOINT_FIX
        )
    weights = contents.get("network_weights")
    if not isinstance(weights, Mapping) or not weights:
        raise invalid_key(
            source, contents, "network_weights", "a non-empty mapping", fix=_CHECKPOINT_FIX
        )
    shapes: dict[str, tuple[int, ...]] = {}
    for name, value in weights.items():
        if isinstance(value, TensorInfo):
            shapes[str(name)] = value.shape
        elif not unsafe:
            raise InputError(
                source,
                "a tensor",
                describe(value),
                key=f"network_weights.{name}",
                fix=_CHECKPOINT_FIX,
            )
    if not isinstance(contents.get("trainer_name"), str):
        raise invalid_key(source, contents, "trainer_name", "a string", fix=_CHECKPOINT_FIX)
    init_args = contents.get("init_args")
    if not isinstance(init_args, dict):
        raise invalid_key(source, contents, "init_args", "a dict", fix=_CHECKPOINT_FIX)
    if not isinstance(init_args.get("configuration"), str):
        found = describe(init_args["configuration"]) if "configuration" in init_args else "nothing"
        raise InputError(
            source, "a string", found, key="init_args.configuration", fix=_CHECKPOINT_FIX
        )
    axes = contents.get("inference_allowed_mirroring_axes")
    mirror_axes = None
    if axes is not None:
        if not isinstance(axes, (tuple, list)) or not all(
            isinstance(a, int) and not isinstance(a, bool) and 0 <= a <= 2 for a in axes
        ):
            raise InputError(
                source,
                "a list of axes 0, 1, 2 or null",
                describe(axes),
                key="inference_allowed_mirroring_axes",
                fix=_CHECKPOINT_FIX,
            )
        mirror_axes = tuple(axes)
    return Checkpoint(
        source,
        contents["trainer_name"],
        init_args["configuration"],
        init_args,
        shapes,
        mirror_axes,
        unsafe,
    )
