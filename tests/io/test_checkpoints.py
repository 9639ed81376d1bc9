"""Issue 23: checkpoints are data, never code (``nnunet_ext.io.checkpoints``, ``io.models``).

Real checkpoints are made here with ``torch.save`` (a dict shaped like the one
``nnUNetTrainer.save_checkpoint`` writes). A payload that would run code when unpickled is
written with torch's own pickler too: ``_Ref`` names any ``module.name`` in a GLOBAL opcode
(resolvable or not), ``_Reduce`` is the textbook ``__reduce__`` returning a real callable.
Every payload that ran would leave a trace: a marker file appears or a victim folder goes.
"""

from __future__ import annotations

import _compat_pickle
import collections
import contextlib
import dataclasses
import datetime
import functools
import importlib
import io
import json
import os
import pickle
import pickletools
import re
import shutil
import struct
import subprocess
import tempfile
import types
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nnunet_ext.io.checkpoints import (
    CHECKPOINT_GLOBALS,
    Checkpoint,
    UnsafeCheckpointError,
    read_checkpoint,
    read_checkpoint_bytes,
)
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.models import check_checkpoint_belongs
from nnunet_ext.trainers.checkpoints import load_checkpoint, safe_globals

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- writing checkpoints -----------------------------------------------------------------------


class _Ref:
    """A global written verbatim into the pickle (``GLOBAL module name``); never called here."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:
        raise AssertionError("a _Ref is only written, never called")

    def __repr__(self) -> str:
        return f"_Ref({self.module}.{self.name})"


class _Call:
    """Pickles as a call of ``ref(*args)``."""

    def __init__(self, ref: _Ref, args: tuple[Any, ...]) -> None:
        self.ref, self.args = ref, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.ref, self.args)


class _Reduce:
    """The textbook payload: ``__reduce__`` returns a real callable and its arguments."""

    def __init__(self, function: Any, args: tuple[Any, ...]) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.function, self.args)


class _Plain:
    """An ordinary object: protocol 2 pickles it as NEWOBJ of its class and BUILD."""

    def __init__(self) -> None:
        self.value = 1


class _Pickler(pickle._Pickler):  # the pure-Python pickler, so that save() can be extended
    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if isinstance(obj, _Ref):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


_PICKLE = types.ModuleType("checkpoint_test_pickle")
_PICKLE.Pickler = _Pickler  # type: ignore[attr-defined]
_PICKLE.dump = lambda obj, file, protocol=None: _Pickler(file, protocol).dump(obj)  # type: ignore[attr-defined]


def _save(checkpoint: Any, path: Path | None = None) -> bytes:
    """``torch.save`` (its zip layout, its storages), written with :class:`_Pickler`."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer, pickle_module=_PICKLE)
    if path is not None:
        path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _data_pkl(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        return archive.read(name)


def _as_unpickled(module: str, name: str) -> str:
    """``module.name`` as Python's unpickler (and torch's) reads a protocol-2 GLOBAL.

    Protocol 2, torch.save's, spells globals by their Python 2 names (``__builtin__.set``).
    """
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def _named_globals(data: bytes) -> list[str]:
    """Every global the checkpoint's pickle names, in stream order (pickletools, independent)."""
    found = [
        _as_unpickled(*str(arg).split(" "))
        for op, arg, _ in pickletools.genops(_data_pkl(data))
        if op.name == "GLOBAL"
    ]
    return list(dict.fromkeys(found))


def _unlisted(data: bytes) -> list[str]:
    return [g for g in _named_globals(data) if g not in CHECKPOINT_GLOBALS]


# --- an nnU-Net checkpoint ---------------------------------------------------------------------

ARCH_KWARGS: dict[str, Any] = {
    "n_stages": 3,
    "features_per_stage": [8, 16, 32],
    "conv_op": "torch.nn.modules.conv.Conv3d",
    "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
    "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
    "n_conv_per_stage": [2, 2, 2],
    "n_conv_per_stage_decoder": [2, 2],
    "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
    "norm_op_kwargs": {"eps": 1e-05, "affine": True},
    "dropout_op": None,
    "dropout_op_kwargs": None,
    "nonlin": "torch.nn.LeakyReLU",
    "nonlin_kwargs": {"inplace": True},
}


_UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"


def _plans() -> dict[str, Any]:
    def configuration(patch: list[int], conv: str) -> dict[str, Any]:
        kwargs = json.loads(json.dumps(ARCH_KWARGS))
        kwargs["conv_op"] = conv
        return {
            "data_identifier": "nnUNetPlans_x",
            "batch_size": 2,
            "patch_size": patch,
            "architecture": {
                "network_class_name": _UNET,
                "arch_kwargs": kwargs,
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            },
        }

    return {
        "dataset_name": "Dataset501_SyntheticHeart",
        "plans_name": "nnUNetPlans",
        "configurations": {
            "2d": configuration([48, 48], "torch.nn.modules.conv.Conv2d"),
            "3d_fullres": configuration([16, 48, 48], "torch.nn.modules.conv.Conv3d"),
            "3d_inherits": {"inherits_from": "3d_fullres", "batch_size": 1},
        },
    }


def _dataset_json() -> dict[str, Any]:
    return {
        "channel_names": {"0": "MRI"},
        "labels": {"background": 0, "myocardium": 1, "LV": 2, "RV": 3},
        "numTraining": 6,
        "file_ending": ".nii.gz",
    }


def _weights() -> collections.OrderedDict[str, torch.Tensor]:
    return collections.OrderedDict(
        [
            ("encoder.stages.0.0.convs.0.conv.weight", torch.ones(8, 1, 1, 3, 3)),
            ("encoder.stages.0.0.convs.0.conv.bias", torch.zeros(8)),
            ("encoder.stages.0.0.convs.0.norm.weight", torch.ones(8, dtype=torch.float16)),
            ("decoder.seg_layers.0.weight", torch.ones(4, 8, 1, 1, 1, dtype=torch.float64)),
            ("decoder.num_batches_tracked", torch.tensor(3)),
        ]
    )


def _nnunet_checkpoint(
    *,
    trainer: str = "CustomEpochs",
    configuration: str = "3d_fullres",
    plans: dict[str, Any] | None = None,
    dataset_json: dict[str, Any] | None = None,
    numpy_values: bool = True,
) -> dict[str, Any]:
    """What ``nnUNetTrainer.save_checkpoint`` writes (nnU-Net 2.8), small."""
    number: Any = np.float64 if numpy_values else float
    loss: Any = np.float32 if numpy_values else float
    return {
        "network_weights": _weights(),
        "optimizer_state": {
            "state": {0: {"momentum_buffer": torch.zeros(8, 1, 1, 3, 3)}},
            "param_groups": [
                {"lr": 0.01, "momentum": 0.99, "nesterov": True, "params": [0, 1, 2, 3]}
            ],
        },
        "grad_scaler_state": None,
        "logging": {
            "mean_fg_dice": [number(0.25), number(0.5)],
            "ema_fg_dice": [number(0.25), number(0.275)],
            "dice_per_class_or_region": [[number(0.1), number(0.2), number(0.4)]],
            "train_losses": [loss(0.9), loss(0.7)],
            "val_losses": [loss(0.8), loss(0.75)],
            "lrs": [0.01, 0.0099],
            "epoch_start_timestamps": [1700000000.5, 1700000010.25],
            "epoch_end_timestamps": [1700000009.5, 1700000019.25],
        },
        "_best_ema": number(0.275),
        "current_epoch": 2,
        "init_args": {
            "plans": _plans() if plans is None else plans,
            "configuration": configuration,
            "fold": 0,
            "dataset_json": _dataset_json() if dataset_json is None else dataset_json,
            "device": torch.device("cpu"),
        },
        "trainer_name": trainer,
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }


@functools.cache
def _good() -> bytes:
    return _save(_nnunet_checkpoint())


@contextlib.contextmanager
def _folder() -> Iterator[Path]:
    """A temporary folder per hypothesis example (function-scoped fixtures are not re-run)."""
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _file_error(file: Path | str) -> str:
    return rf"^{re.escape(str(file))}(: |\s)"


# --- payloads that would run code --------------------------------------------------------------


@dataclass(frozen=True)
class _Traps:
    """What a payload that ran would leave: ``marker`` appears or ``victim`` goes."""

    marker: Path
    victim: Path

    def untouched(self) -> bool:
        return not self.marker.exists() and self.victim.is_dir()

    @classmethod
    def make(cls, folder: Path) -> _Traps:
        (folder / "victim").mkdir()
        return cls(folder / "MARKER", folder / "victim")


# (module, name, how to call it so that it leaves a trace)
_DANGEROUS: tuple[tuple[str, str, str], ...] = (
    ("posix", "system", "shell"),
    ("os", "system", "shell"),
    ("nt", "system", "shell"),
    ("os", "popen", "shell"),
    ("subprocess", "Popen", "argv"),
    ("subprocess", "run", "argv"),
    ("subprocess", "check_call", "argv"),
    ("subprocess", "getoutput", "shell"),
    ("builtins", "eval", "code"),
    ("builtins", "exec", "code"),
    ("__builtin__", "eval", "code"),
    ("builtins", "open", "open"),
    ("io", "open", "open"),
    ("builtins", "getattr", "none"),
    ("builtins", "__import__", "none"),
    ("shutil", "rmtree", "victim"),
    ("os", "rmdir", "victim"),
    ("pathlib", "Path", "none"),
    ("torch", "load", "path"),
    ("torch.serialization", "load", "path"),
    ("torch.nn.modules.module", "Module", "none"),
    ("numpy", "load", "path"),
    ("numpy", "frombuffer", "none"),
    ("pickle", "loads", "pickle"),
    ("_pickle", "loads", "pickle"),
    ("runpy", "run_path", "path"),
    ("importlib", "import_module", "none"),
    ("_codecs", "decode", "none"),
    ("datetime", "sys", "none"),
    ("collections", "namedtuple", "none"),
    ("numpy.dtype", "__new__", "none"),
    ("nnunetv2.training.nnUNetTrainer.nnUNetTrainer", "nnUNetTrainer", "none"),
    ("nnunetv2.utilities.find_objects", "recursive_find_python_class", "none"),
    ("nnunet_ext.trainers.checkpoints", "load_checkpoint", "path"),
)


def _arguments(how: str, traps: _Traps) -> tuple[Any, ...]:
    marker = str(traps.marker)
    return {
        "shell": (f"touch {marker}",),
        "argv": (["touch", marker],),
        "code": (f"open({marker!r}, 'w').close()",),
        "open": (marker, "w"),
        "victim": (str(traps.victim),),
        "path": (marker,),
        "pickle": (pickle.dumps(_Reduce(os.system, (f"touch {marker}",))),),
        "none": (),
    }[how]


_REAL: dict[str, tuple[Any, str]] = {
    "os.system": (os.system, "shell"),
    "builtins.eval": (eval, "code"),
    "builtins.exec": (exec, "code"),
    "builtins.open": (open, "open"),
    "subprocess.Popen": (subprocess.Popen, "argv"),
    "subprocess.run": (subprocess.run, "argv"),
    "shutil.rmtree": (shutil.rmtree, "victim"),
    "torch.load": (torch.load, "path"),
}

_IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_LISTED_MODULES = sorted({g.rpartition(".")[0] for g in CHECKPOINT_GLOBALS})


@dataclass(frozen=True)
class _Payload:
    kind: str  # "ref": _Call(_Ref(module, name)); "real": _Reduce(function); "object": _Plain
    module: str
    name: str
    how: str = "none"

    def build(self, traps: _Traps) -> Any:
        if self.kind == "object":
            return _Plain()
        if self.kind == "real":
            function, how = _REAL[self.name]
            return _Reduce(function, _arguments(how, traps))
        return _Call(_Ref(self.module, self.name), _arguments(self.how, traps))


def _unlisted_names() -> st.SearchStrategy[tuple[str, str]]:
    """``(module, name)`` pairs outside CHECKPOINT_GLOBALS: random, or a listed module's other."""
    pairs = st.one_of(
        st.tuples(st.lists(_IDENT, min_size=1, max_size=3).map(".".join), _IDENT),
        st.tuples(st.sampled_from(_LISTED_MODULES), _IDENT),
    )
    return pairs.filter(lambda p: _as_unpickled(*p) not in CHECKPOINT_GLOBALS)


_REF_PAYLOADS = st.one_of(
    st.sampled_from(_DANGEROUS).map(lambda d: _Payload("ref", *d)),
    _unlisted_names().map(lambda p: _Payload("ref", *p, how="shell")),
)
_CALLING_PAYLOADS = st.one_of(
    _REF_PAYLOADS, st.sampled_from(sorted(_REAL)).map(lambda n: _Payload("real", "", n))
)
_PAYLOADS = st.one_of(_CALLING_PAYLOADS, st.just(_Payload("object", "", "")))

POSITIONS = (
    "top",
    "init_args",
    "plans",
    "network_weights",
    "logging",
    "optimizer_state",
    "dict_key",
    "tuple",
)


def _wrap(payload: Any, wrappers: list[str]) -> Any:
    for wrapper in wrappers:
        payload = {
            "list": lambda p: [1, p],
            "tuple": lambda p: ("a", p),
            "dict": lambda p: {"k": p},
            "odict": lambda p: collections.OrderedDict(k=p),
        }[wrapper](payload)
    return payload


def _place(checkpoint: dict[str, Any], position: str, payload: Any) -> None:
    init_args = checkpoint["init_args"]
    if position == "top":
        checkpoint["payload"] = payload
    elif position == "init_args":
        init_args["payload"] = payload
    elif position == "plans":
        configuration = init_args["plans"]["configurations"]["3d_fullres"]
        configuration["architecture"]["arch_kwargs"]["nonlin_kwargs"]["payload"] = payload
    elif position == "network_weights":
        checkpoint["network_weights"]["payload.weight"] = payload
    elif position == "logging":
        checkpoint["logging"]["train_losses"].append(payload)
    elif position == "optimizer_state":
        checkpoint["optimizer_state"]["param_groups"][0]["payload"] = payload
    elif position == "dict_key":
        checkpoint["extra"] = {payload: 1}
    else:
        checkpoint["extra"] = (1, (payload,))


_WRAPPERS = st.lists(st.sampled_from(["list", "tuple", "dict", "odict"]), max_size=3)


def _unsafe_checkpoint(
    folder: Path, payload: _Payload, position: str, wrappers: list[str], *, numpy_values: bool
) -> tuple[Path, _Traps]:
    traps = _Traps.make(folder)
    checkpoint = _nnunet_checkpoint(numpy_values=numpy_values)
    built = payload.build(traps)
    # a dict key must stay hashable: there the payload goes in unwrapped
    _place(checkpoint, position, built if position == "dict_key" else _wrap(built, wrappers))
    file = folder / "fold_0" / "checkpoint_final.pth"
    file.parent.mkdir()
    _save(checkpoint, file)
    return file, traps


# --- a checkpoint that would run code is refused -----------------------------------------------


@SETTINGS
@given(payload=_PAYLOADS, position=st.sampled_from(POSITIONS), wrappers=_WRAPPERS)
@example(payload=_Payload("real", "", "os.system"), position="top", wrappers=[])  # textbook
def test_checkpoint_naming_a_global_outside_the_list_is_refused_naming_file_and_global(
    payload, position, wrappers
):
    with _folder() as folder:
        file, traps = _unsafe_checkpoint(folder, payload, position, wrappers, numpy_values=True)
        data = file.read_bytes()
        (first, *_) = _unlisted(data)
        if payload.kind == "ref":
            assert first == _as_unpickled(payload.module, payload.name)
        if payload.name == "os.system":
            assert first == f"{os.system.__module__}.system"  # posix.system
        for read in (
            lambda: read_checkpoint(file),
            lambda: read_checkpoint(str(file), allow_unsafe=False),
            lambda: read_checkpoint_bytes(data, source=str(file)),
            lambda: load_checkpoint(file),
        ):
            with pytest.raises(UnsafeCheckpointError, match=_file_error(file)) as caught:
                read()
            assert f"got the global {first}." in str(caught.value)
            assert isinstance(caught.value, InputError)
            assert caught.value.source == str(file)
            assert "\n" not in str(caught.value)
        assert traps.untouched()


@SETTINGS
@given(payload=_CALLING_PAYLOADS, position=st.sampled_from(POSITIONS), wrappers=_WRAPPERS)
def test_allow_unsafe_reads_the_structure_calls_nothing_and_reports_the_globals(
    payload, position, wrappers
):
    with _folder() as folder:
        file, traps = _unsafe_checkpoint(folder, payload, position, wrappers, numpy_values=True)
        data = file.read_bytes()
        found = read_checkpoint(file, allow_unsafe=True)
        assert traps.untouched()
        assert found == read_checkpoint_bytes(data, source=str(file), allow_unsafe=True)
        assert traps.untouched()
        assert found.unsafe_globals == tuple(_unlisted(data))
        assert found.unsafe_globals  # at least the payload's own global
        assert found.trainer_name == "CustomEpochs"
        assert found.configuration == "3d_fullres"
        assert found.weight_shapes == {k: tuple(v.shape) for k, v in _weights().items()}
        assert found.mirror_axes == (0, 1, 2)


def test_allow_unsafe_reads_a_checkpoint_holding_an_object_of_another_class(tmp_path):
    # protocol 2 pickles every ordinary object as NEWOBJ of its class: a trusted checkpoint with
    # one (a custom trainer's init argument) must still read with allow_unsafe=True
    file, traps = _unsafe_checkpoint(
        tmp_path, _Payload("object", "", ""), "init_args", [], numpy_values=True
    )
    found = read_checkpoint(file, allow_unsafe=True)
    assert found.unsafe_globals == (f"{__name__}._Plain",)
    assert traps.untouched()


def test_safe_checkpoint_reports_no_unsafe_globals_with_or_without_allow_unsafe(tmp_path):
    file = tmp_path / "checkpoint_final.pth"
    file.write_bytes(_good())
    assert read_checkpoint(file) == read_checkpoint(file, allow_unsafe=True)
    assert read_checkpoint(file).unsafe_globals == ()


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*missing\.pth"):
        read_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*missing\.pth"):
        load_checkpoint(tmp_path / "missing.pth")


# --- the check and torch's weights-only load agree ---------------------------------------------


def _resolve(full: str) -> Any:
    module, _, name = full.rpartition(".")
    with warnings.catch_warnings():  # numpy.core is deprecated under NumPy 2
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return None


def _safe_base() -> dict[str, Any]:
    return _nnunet_checkpoint(numpy_values=False)


@pytest.mark.parametrize("full", CHECKPOINT_GLOBALS)
def test_every_listed_global_is_accepted_by_the_check_and_by_the_weights_only_load(full, tmp_path):
    obj = _resolve(full)
    if obj is None:
        pytest.skip(f"{full} does not resolve with this NumPy/torch")
    checkpoint = _safe_base()
    checkpoint["named"] = _Ref(*full.rsplit(".", 1))
    file = tmp_path / "checkpoint_final.pth"
    _save(checkpoint, file)
    assert _unlisted(file.read_bytes()) == []
    assert full in _named_globals(file.read_bytes())
    assert read_checkpoint(file).unsafe_globals == ()
    loaded = load_checkpoint(file)["named"]
    if not full.startswith("torch."):  # torch resolves its own names (storages as StorageType)
        assert loaded is obj


def test_the_torch_side_allows_exactly_the_listed_names():
    resolved = safe_globals()
    listed = [g for g in CHECKPOINT_GLOBALS if _resolve(g) is not None]
    assert [name for _, name in resolved] == listed
    assert all(obj is _resolve(name) for obj, name in resolved)
    # only NumPy names may be missing here (numpy.core vs numpy._core, platform dtypes)
    assert all(g in listed for g in CHECKPOINT_GLOBALS if not g.startswith("numpy."))
    assert any(n.endswith("multiarray.scalar") for n in listed)
    assert any(n.endswith("multiarray._reconstruct") for n in listed)


def _torch_name(full: str) -> str:
    """How torch's weights-only unpickler spells a refused global (it drops ``builtins.``)."""
    return full.removeprefix("builtins.")


@SETTINGS
@given(
    payload=_REF_PAYLOADS.filter(lambda p: not p.module.startswith("torch")),
    position=st.sampled_from(POSITIONS),
)
def test_a_global_outside_the_list_is_refused_by_the_check_and_by_the_weights_only_load(
    payload, position
):
    with _folder() as folder:
        file, traps = _unsafe_checkpoint(folder, payload, position, [], numpy_values=False)
        full = _as_unpickled(payload.module, payload.name)
        with pytest.raises(UnsafeCheckpointError, match=_file_error(file)):
            read_checkpoint(file)
        with pytest.raises(UnsafeCheckpointError, match=re.escape(f"the global {full}.")):
            load_checkpoint(file)
        shown = re.escape(_torch_name(full))
        with torch.serialization.safe_globals(safe_globals()):
            with pytest.raises(pickle.UnpicklingError, match=rf"GLOBAL {shown}\b"):
                torch.load(file, map_location="cpu", weights_only=True)
        assert traps.untouched()


_TENSOR_DTYPES = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)


@SETTINGS
@given(
    tensors=st.dictionaries(
        st.from_regex(r"[a-z]{1,6}(\.[a-z0-9]{1,4}){0,3}", fullmatch=True),
        st.tuples(
            st.lists(st.integers(0, 4), max_size=4).map(tuple),
            st.sampled_from(_TENSOR_DTYPES),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_check_reports_the_shapes_torch_loads(tensors):
    weights = collections.OrderedDict()
    for name, (shape, dtype, parameter) in tensors.items():
        tensor = torch.arange(int(np.prod(shape)), dtype=torch.float64).reshape(shape).to(dtype)
        weights[name] = torch.nn.Parameter(tensor, requires_grad=False) if parameter else tensor
    checkpoint = _safe_base()
    checkpoint["network_weights"] = weights
    with _folder() as folder:
        file = folder / "checkpoint_best.pth"
        _save(checkpoint, file)
        found = read_checkpoint(file)
        loaded = load_checkpoint(file)
    assert list(found.weight_shapes) == list(weights)
    assert found.weight_shapes == {k: tuple(v.shape) for k, v in loaded["network_weights"].items()}
    for name, tensor in weights.items():
        assert torch.equal(loaded["network_weights"][name], tensor)


_VALUES = {
    "datetime": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
    "date": datetime.date(2024, 5, 1),
    "time": datetime.time(12, 30),
    "timedelta": datetime.timedelta(seconds=90),
    "bytes": b"\x00\xffbytes",
    # protocol 2 spells these __builtin__.set, ...: both sides read them as builtins.set, ...
    "set": {1, 2},
    "frozenset": frozenset({3}),
    "complex": 1 + 2j,
    "bytearray": bytearray(b"ab"),
    "ordered_dict": collections.OrderedDict(a=1),
    "parameter": torch.nn.Parameter(torch.ones(2)),
    "cuda_device": torch.device("cuda", 0),
    "bfloat16_tensor": torch.ones(2, dtype=torch.bfloat16),
    "bool_tensor": torch.ones(2, dtype=torch.bool),
    # nnU-Net's logger holds NumPy floats (np.mean, np.nanmean)
    "np.float64": np.float64(0.25),
    "np.float32": np.float32(0.25),
    "np.int64": np.int64(3),
    "np.bool_": np.bool_(True),
    "np.ndarray": np.arange(3.0),
    "np.dtype": np.dtype("float32"),
    "np.uint8_image": np.zeros((2, 3), dtype=np.uint8),
    "np.float16": np.float16(1.5),
}


@pytest.mark.parametrize("key", _VALUES)
def test_what_the_check_accepts_the_weights_only_load_loads(key, tmp_path):
    value = _VALUES[key]
    checkpoint = _safe_base()
    checkpoint["value"] = value
    file = tmp_path / "checkpoint_final.pth"
    _save(checkpoint, file)
    assert read_checkpoint(file).unsafe_globals == ()  # the check accepts it ...
    loaded = load_checkpoint(file)["value"]  # ... so the load must too
    if isinstance(value, torch.Tensor):
        assert torch.equal(loaded, value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(loaded, value)
    else:
        assert loaded == value


def test_an_nnunet_checkpoint_with_numpy_log_values_loads_weights_only(tmp_path):
    # nnUNetTrainer logs np.mean/np.nanmean results: every checkpoint it writes holds these
    file = tmp_path / "checkpoint_final.pth"
    file.write_bytes(_good())
    read_checkpoint(file)
    loaded = load_checkpoint(file)
    assert loaded["_best_ema"] == pytest.approx(0.275)


def test_an_nnunet_checkpoint_without_numpy_values_loads_weights_only(tmp_path):
    file = tmp_path / "checkpoint_final.pth"
    _save(_safe_base(), file)
    loaded = load_checkpoint(file)
    assert loaded["trainer_name"] == "CustomEpochs"
    assert loaded["init_args"]["device"] == torch.device("cpu")
    assert read_checkpoint(file).init_args["device"] == "cpu"


# --- read_checkpoint_bytes and read_checkpoint agree ---------------------------------------------

_JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=4)
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@SETTINGS
@given(
    trainer=st.text(max_size=12),
    configuration=st.sampled_from(["2d", "3d_fullres", "3d_lowres", "x"]),
    extra=_JSON,
    numpy_values=st.booleans(),
    axes=st.none() | st.lists(st.integers(0, 2), max_size=3).map(tuple),
    source=st.text(min_size=1, max_size=20),
)
def test_read_checkpoint_bytes_gives_the_same_checkpoint_as_read_checkpoint(
    trainer, configuration, extra, numpy_values, axes, source
):
    checkpoint = _nnunet_checkpoint(
        trainer=trainer, configuration=configuration, numpy_values=numpy_values
    )
    checkpoint["init_args"]["extra"] = extra
    checkpoint["inference_allowed_mirroring_axes"] = axes
    with _folder() as folder:
        file = folder / "checkpoint_final.pth"
        data = _save(checkpoint, file)
        found = read_checkpoint(file)
    assert found == read_checkpoint_bytes(data, source=str(file))
    assert read_checkpoint_bytes(data, source=source) == dataclasses.replace(found, source=source)
    assert (found.trainer_name, found.configuration, found.mirror_axes) == (
        trainer,
        configuration,
        axes,
    )
    assert found.init_args["extra"] == extra
    assert found.init_args["plans"] == _plans()


@SETTINGS
@given(
    value=st.recursive(
        st.one_of(_JSON_LEAVES, st.sampled_from(sorted(_VALUES)).map(_VALUES.__getitem__)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.lists(inner, max_size=3).map(tuple),
            st.dictionaries(st.text(max_size=3), inner, max_size=3),
        ),
        max_leaves=10,
    )
)
def test_any_mix_of_what_the_check_accepts_loads_weights_only(value):
    checkpoint = _safe_base()
    checkpoint["init_args"]["value"] = value
    with _folder() as folder:
        file = folder / "checkpoint_final.pth"
        _save(checkpoint, file)
        assert read_checkpoint(file).unsafe_globals == ()
        assert "value" in load_checkpoint(file)["init_args"]


# --- damaged bytes: one InputError naming the file, never another exception --------------------


def _member_spans(data: bytes) -> list[tuple[str, int, int]]:
    """``(name, start, end)`` of each member's stored bytes (torch.save stores, never deflates)."""
    spans = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            offset = info.header_offset
            name_length, extra_length = struct.unpack("<HH", data[offset + 26 : offset + 30])
            start = offset + 30 + name_length + extra_length
            spans.append((info.filename, start, start + info.compress_size))
    return [s for s in spans if s[2] > s[1]]


def _both_refuse(data: bytes, folder: Path, *, bytes_too: bool = True) -> None:
    file = folder / "checkpoint_final.pth"
    file.write_bytes(data)
    with pytest.raises(InputError, match=_file_error(file)):
        read_checkpoint(file)
    with pytest.raises(InputError, match=_file_error(file)):
        load_checkpoint(file)
    if bytes_too:
        source = f"bundle.zip: {file.name}"
        with pytest.raises(InputError, match=_file_error(source)):
            read_checkpoint_bytes(data, source=source)


@SETTINGS
@given(st.data())
def test_a_truncated_checkpoint_is_an_input_error(data):
    good = _good()
    end = data.draw(st.integers(0, len(good) - 1) | st.integers(len(good) - 64, len(good) - 1))
    with _folder() as folder:
        _both_refuse(good[:end], folder)


@SETTINGS
@given(st.data())
def test_a_bit_flip_in_any_member_is_an_input_error(data):
    good = _good()
    name, start, end = data.draw(st.sampled_from(_member_spans(good)))
    flips = data.draw(st.lists(st.integers(start, end - 1), min_size=1, max_size=3, unique=True))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(good)
    for position in flips:
        damaged[position] ^= 1 << bit
    with _folder() as folder:
        # every member is CRC-checked, from a file and from bytes
        _both_refuse(bytes(damaged), folder, bytes_too=name.endswith("/data.pkl"))


def test_read_checkpoint_bytes_refuses_a_damaged_tensor_member_as_read_checkpoint_does():
    good = _good()
    name, start, _ = next(s for s in _member_spans(good) if "/data/" in s[0])
    damaged = bytearray(good)
    damaged[start] ^= 0x01
    outcome = _outcome(lambda: read_checkpoint_bytes(bytes(damaged), source="c.pth"))
    assert outcome == "InputError", f"{name} with a flipped bit: {outcome}"


def _central_entries(data: bytes) -> dict[str, int]:
    """Member name -> offset of its central directory entry."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        position = archive.start_dir
    entries = {}
    while data[position : position + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack(
            "<HHH", data[position + 28 : position + 34]
        )
        entries[data[position + 46 : position + 46 + name_length].decode()] = position
        position += 46 + name_length + extra_length + comment_length
    return entries


#: Central directory fields zipfile refuses to handle (offset in the entry, new 16-bit value).
_FIELD_DAMAGES: dict[str, tuple[int, Any]] = {
    "encrypted": (8, lambda v: v | 0x01),
    "patched_data": (8, lambda v: v | 0x20),
    "strong_encryption": (8, lambda v: v | 0x40),
    "version_6.4_needed": (6, lambda v: 64),
    "compression_99": (10, lambda v: 99),
    "deflated": (10, lambda v: zipfile.ZIP_DEFLATED),
}


@pytest.fixture(scope="module")
def small_checkpoint() -> bytes:
    weights = collections.OrderedDict(w=torch.ones(2))
    return _save(
        {"network_weights": weights, "trainer_name": "T", "init_args": {"configuration": "2d"}}
    )


def _attempt(read: Any) -> Any:
    try:
        return read()
    except Exception as err:  # what these tests look for
        return err


def _outcome(read: Any) -> str:
    try:
        read()
    except InputError:
        return "InputError"
    except Exception as err:  # what these tests look for
        return f"{type(err).__name__}: {str(err)[:60]}"
    return "read"


@pytest.mark.parametrize(
    ("member", "damage"),
    [pytest.param(m, d) for m in ("archive/data.pkl", "archive/data/0") for d in _FIELD_DAMAGES],
)
def test_a_zip_field_zipfile_cannot_handle_is_an_input_error(
    member, damage, small_checkpoint, tmp_path
):
    offset, change = _FIELD_DAMAGES[damage]
    position = _central_entries(small_checkpoint)[member] + offset
    (value,) = struct.unpack("<H", small_checkpoint[position : position + 2])
    damaged = bytearray(small_checkpoint)
    damaged[position : position + 2] = struct.pack("<H", change(value))
    file = tmp_path / "checkpoint_final.pth"
    file.write_bytes(damaged)
    assert _outcome(lambda: read_checkpoint(file)) == "InputError"
    if member.endswith("data.pkl") or damage.startswith("version"):  # what bytes read
        outcome = _outcome(lambda: read_checkpoint_bytes(bytes(damaged), source=str(file)))
        assert outcome == "InputError"


def _other_header_bytes(data: bytes) -> list[int]:
    """Every byte outside the members' data and the fields of the test above."""
    skip = bytearray(len(data))
    for _, start, end in _member_spans(data):
        skip[start:end] = b"\x01" * (end - start)
    for position in _central_entries(data).values():
        skip[position + 6 : position + 12] = b"\x01" * 6
    return [p for p in range(len(data)) if not skip[p]]


@SETTINGS
@given(data=st.data())
def test_a_bit_flip_in_the_zip_headers_is_an_input_error_or_harmless(data, small_checkpoint):
    good = small_checkpoint
    positions = data.draw(
        st.lists(st.sampled_from(_other_header_bytes(good)), min_size=1, max_size=2, unique=True)
    )
    damaged = bytearray(good)
    for position in positions:
        damaged[position] ^= 1 << data.draw(st.integers(0, 7))
    intact = read_checkpoint_bytes(good, source="c.pth")
    with _folder() as folder:
        file = folder / "c.pth"
        file.write_bytes(damaged)
        for read in (
            lambda: read_checkpoint(file),
            lambda: read_checkpoint_bytes(bytes(damaged), source=str(file)),
        ):
            result = _attempt(read)
            if isinstance(result, Checkpoint):
                assert dataclasses.replace(result, source="c.pth") == intact
            else:
                assert isinstance(result, InputError), repr(result)
                assert str(result).startswith(f"{file} must be "), result


@SETTINGS
@given(junk=st.binary(max_size=300), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02"]))
def test_junk_is_an_input_error(junk, prefix):
    with _folder() as folder:
        _both_refuse(prefix + junk, folder)


def test_an_empty_file_is_an_input_error(tmp_path):
    _both_refuse(b"", tmp_path)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("members", "found"),
    [
        ({"archive/version": b"3"}, "0 such members"),
        ({"data.pkl": pickle.dumps({"a": 1}, protocol=2)}, "0 such members"),
        ({"a/b/data.pkl": pickle.dumps({"a": 1}, protocol=2)}, "0 such members"),
        ({"a/data.pkl": b"", "b/data.pkl": b""}, "2 such members"),
        ({"archive/data.pkl": b"\x80\x02}q\x00."[:-1]}, "a readable checkpoint pickle"),
        ({"archive/data.pkl": pickle.dumps([1, 2], protocol=2)}, "an nnU-Net checkpoint dict"),
    ],
)
def test_a_zip_that_is_not_a_checkpoint_is_an_input_error(members, found, tmp_path):
    _both_refuse(_zip(members), tmp_path)
    with pytest.raises(InputError, match=re.escape(found)):
        read_checkpoint_bytes(_zip(members), source="c.pth")


@SETTINGS
@given(pickled=st.binary(max_size=200))
def test_any_bytes_as_the_pickle_are_an_input_error(pickled):
    with _folder() as folder:
        _both_refuse(_zip({"archive/data.pkl": pickled}), folder)


@SETTINGS
@given(payload=_PAYLOADS, end=st.integers(0, 10_000))
def test_a_legacy_format_checkpoint_is_an_input_error_and_never_unpickled(payload, end):
    with _folder() as folder:
        traps = _Traps.make(folder)
        checkpoint = _nnunet_checkpoint()
        checkpoint["payload"] = payload.build(traps)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer, pickle_module=_PICKLE, _use_new_zipfile_serialization=False)
        data = buffer.getvalue()[: max(end, 20)]
        file = folder / "checkpoint_final.pth"
        file.write_bytes(data)
        with pytest.raises(InputError, match=_file_error(file) + ".*legacy pre-1.6 format"):
            read_checkpoint(file, allow_unsafe=True)
        with pytest.raises(InputError, match=_file_error(file) + ".*legacy pre-1.6 format"):
            load_checkpoint(file)
        with pytest.raises(InputError, match=_file_error("b.zip: c.pth")):
            read_checkpoint_bytes(data, source="b.zip: c.pth", allow_unsafe=True)
        assert traps.untouched()


_MISSING = object()


@SETTINGS
@given(
    weights=st.sampled_from(["ok", "empty", "list", "string_values", _MISSING]),
    trainer=st.sampled_from(["CustomEpochs", 3, None, _MISSING]),
    init_args=st.sampled_from(["ok", "no_configuration", "int_configuration", "list", _MISSING]),
    axes=st.sampled_from([(0, 1), [2], None, (3,), (True,), "012", (-1,), _MISSING]),
)
def test_a_dict_missing_what_the_predictor_reads_is_an_input_error_naming_the_key(
    weights, trainer, init_args, axes
):
    checkpoint: dict[str, Any] = {}
    if weights is not _MISSING:
        checkpoint["network_weights"] = {
            "ok": _weights(),
            "empty": collections.OrderedDict(),
            "list": [torch.ones(1)],
            "string_values": {"w": "x"},
        }[weights]
    if trainer is not _MISSING:
        checkpoint["trainer_name"] = trainer
    if init_args is not _MISSING:
        checkpoint["init_args"] = {
            "ok": {"configuration": "2d"},
            "no_configuration": {"fold": 0},
            "int_configuration": {"configuration": 2},
            "list": ["2d"],
        }[init_args]
    if axes is not _MISSING:
        checkpoint["inference_allowed_mirroring_axes"] = axes
    problems = [
        ("network_weights", weights not in ("ok", "string_values")),
        ("network_weights.w", weights == "string_values"),
        ("trainer_name", not isinstance(trainer, str)),
        ("init_args", init_args not in ("ok", "no_configuration", "int_configuration")),
        ("init_args.configuration", init_args in ("no_configuration", "int_configuration")),
        ("inference_allowed_mirroring_axes", axes not in ((0, 1), [2], None, _MISSING)),
    ]
    with _folder() as folder:
        file = folder / "checkpoint_final.pth"
        _save(checkpoint, file)
        wrong = [key for key, bad in problems if bad]
        if not wrong:
            assert read_checkpoint(file).configuration == "2d"
            return
        with pytest.raises(InputError, match=_file_error(file)) as caught:
            read_checkpoint(file)
    assert f"{file}: {wrong[0]} must be" in str(caught.value)


# --- check_checkpoint_belongs ------------------------------------------------------------------


def _model_dir(trainer: str = "CustomEpochs", configuration: str = "3d_fullres") -> Path:
    return Path("/results/Dataset501_SyntheticHeart") / f"{trainer}__nnUNetPlans__{configuration}"


def _read(checkpoint: dict[str, Any], model_dir: Path) -> Checkpoint:
    source = str(model_dir / "fold_0" / "checkpoint_final.pth")
    return read_checkpoint_bytes(_save(checkpoint), source=source)


def _belongs_error(
    checkpoint: Checkpoint, model_dir: Path, plans: Any, dataset_json: Any, key: str
) -> str:
    with pytest.raises(InputError, match=rf"^{re.escape(checkpoint.source)}: ") as caught:
        check_checkpoint_belongs(checkpoint, model_dir, plans=plans, dataset_json=dataset_json)
    message = str(caught.value)
    assert f"{checkpoint.source}: {key} must be " in message, message
    assert "\n" not in message
    return message


def _tuples(value: Any, draw_bits: list[bool]) -> Any:
    """``value`` with some lists as tuples (nnU-Net keeps tuples in memory; JSON says lists)."""
    if isinstance(value, dict):
        return {k: _tuples(v, draw_bits) for k, v in value.items()}
    if isinstance(value, list):
        items = [_tuples(v, draw_bits) for v in value]
        return tuple(items) if draw_bits and draw_bits.pop() else items
    return value


@SETTINGS
@given(
    configuration=st.sampled_from(["2d", "3d_fullres", "3d_inherits"]),
    as_tuples=st.lists(st.booleans(), max_size=40),
)
def test_a_checkpoint_of_its_own_folder_belongs(configuration, as_tuples):
    model_dir = _model_dir(configuration=configuration)
    stored = _tuples(_plans(), list(as_tuples))
    checkpoint = _read(_nnunet_checkpoint(configuration=configuration, plans=stored), model_dir)
    check_checkpoint_belongs(checkpoint, model_dir, plans=_plans(), dataset_json=_dataset_json())


@SETTINGS
@given(
    trainer=st.sampled_from(["nnUNetTrainer", "CustomEpochs_c3_l1", "customepochs", ""]),
    configuration=st.sampled_from(["2d", "3d_fullres", "3d_lowres"]),
)
def test_a_checkpoint_of_another_trainer_or_configuration_does_not_belong(trainer, configuration):
    model_dir = _model_dir()
    checkpoint = _read(_nnunet_checkpoint(trainer=trainer, configuration=configuration), model_dir)
    plans, dataset_json = _plans(), _dataset_json()
    message = _belongs_error(checkpoint, model_dir, plans, dataset_json, "trainer_name")
    assert f"'CustomEpochs', the trainer of its folder {model_dir}; got {trainer!r}." in message
    checkpoint = _read(_nnunet_checkpoint(configuration=configuration), model_dir)
    if configuration == "3d_fullres":
        check_checkpoint_belongs(checkpoint, model_dir, plans=plans, dataset_json=dataset_json)
        return
    message = _belongs_error(checkpoint, model_dir, plans, dataset_json, "init_args.configuration")
    assert f"'3d_fullres', the configuration of its folder {model_dir}; got" in message


def _paths(value: Any, path: str = "") -> list[tuple[str, list[Any]]]:
    """``(key path, keys from the root)`` of every value in a JSON tree, leaves and inner nodes."""
    found: list[tuple[str, list[Any]]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        child_path = f"{path}.{key}" if isinstance(value, dict) else f"{path}[{key}]"
        found.append((child_path, [key]))
        if isinstance(child, dict | list) and child:
            found += [(p, [key, *keys]) for p, keys in _paths(child, child_path)]
    return found


def _at(tree: Any, keys: list[Any]) -> tuple[Any, Any]:
    for key in keys[:-1]:
        tree = tree[key]
    return tree, keys[-1]


_NEW_VALUES = st.one_of(
    st.integers(-3, 300),
    st.text(max_size=6),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(0, 9), max_size=3),
)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@SETTINGS
@given(st.data())
def test_an_edited_architecture_does_not_belong_and_the_message_names_the_key(data):
    configuration = data.draw(st.sampled_from(["2d", "3d_fullres"]))
    arch = _plans()["configurations"][configuration]["architecture"]["arch_kwargs"]
    path, keys = data.draw(st.sampled_from(_paths(arch)))
    edit_folder = data.draw(st.booleans(), label="edit the folder's plans.json")
    folder_plans, stored_plans = _plans(), _plans()
    edited = folder_plans if edit_folder else stored_plans
    parent, last = _at(edited["configurations"][configuration]["architecture"]["arch_kwargs"], keys)
    old = parent[last]
    new = data.draw(
        _NEW_VALUES.filter(
            # a list of the same length is reported at its first differing item: not drawn
            lambda v: (
                _json(v) != _json(old)
                and not (isinstance(v, list) and isinstance(old, list) and len(v) == len(old))
            )
        ),
        label="new value",
    )
    parent[last] = new
    model_dir = _model_dir(configuration=configuration)
    checkpoint = _read(
        _nnunet_checkpoint(configuration=configuration, plans=stored_plans), model_dir
    )
    key = f"init_args.plans.configurations.{configuration}.architecture.arch_kwargs{path}"
    message = _belongs_error(checkpoint, model_dir, folder_plans, _dataset_json(), key)
    assert f", as in {model_dir / 'plans.json'}; got " in message


def _remove_arch_key(configuration: str, remove: str, *, from_folder: bool) -> None:
    folder_plans, stored_plans = _plans(), _plans()
    edited = folder_plans if from_folder else stored_plans
    del edited["configurations"][configuration]["architecture"]["arch_kwargs"][remove]
    model_dir = _model_dir(configuration=configuration)
    checkpoint = _read(
        _nnunet_checkpoint(configuration=configuration, plans=stored_plans), model_dir
    )
    key = f"init_args.plans.configurations.{configuration}.architecture.arch_kwargs.{remove}"
    message = _belongs_error(checkpoint, model_dir, folder_plans, _dataset_json(), key)
    assert str(model_dir / "plans.json") in message


@SETTINGS
@given(
    configuration=st.sampled_from(["2d", "3d_fullres"]),
    remove=st.sampled_from(sorted(k for k, v in ARCH_KWARGS.items() if v is not None)),
    from_folder=st.booleans(),
)
def test_a_removed_architecture_key_does_not_belong_and_the_message_names_it(
    configuration, remove, from_folder
):
    _remove_arch_key(configuration, remove, from_folder=from_folder)


@pytest.mark.parametrize("from_folder", [True, False])
def test_a_removed_null_architecture_key_is_named(from_folder):
    _remove_arch_key("3d_fullres", "dropout_op", from_folder=from_folder)


@SETTINGS
@given(
    configuration=st.sampled_from(["2d", "3d_fullres"]),
    patch=st.lists(st.integers(1, 512), min_size=1, max_size=4),
)
def test_another_patch_size_does_not_belong(configuration, patch):
    folder_plans = _plans()
    own = folder_plans["configurations"][configuration]["patch_size"]
    folder_plans["configurations"][configuration]["patch_size"] = patch
    model_dir = _model_dir(configuration=configuration)
    checkpoint = _read(_nnunet_checkpoint(configuration=configuration), model_dir)
    if patch == own:
        check_checkpoint_belongs(
            checkpoint, model_dir, plans=folder_plans, dataset_json=_dataset_json()
        )
        return
    key = f"init_args.plans.configurations.{configuration}.patch_size"
    ours, theirs = patch, own
    if len(patch) == len(own):
        index = next(i for i, (a, b) in enumerate(zip(patch, own, strict=True)) if a != b)
        key, ours, theirs = f"{key}[{index}]", patch[index], own[index]
    message = _belongs_error(checkpoint, model_dir, folder_plans, _dataset_json(), key)
    assert f"{_json(ours)}, as in {model_dir / 'plans.json'}; got {_json(theirs)}." in message


@SETTINGS
@given(
    part=st.sampled_from(["labels", "channel_names"]),
    name=st.sampled_from(["background", "myocardium", "LV", "RV", "0", "1", "scar"]),
    value=st.one_of(st.integers(0, 5), st.text(min_size=1, max_size=5), st.none()),
)
def test_other_labels_or_channels_do_not_belong_and_the_message_names_the_key(part, name, value):
    folder_json = _dataset_json()
    before = folder_json[part].get(name)
    if value is None:
        folder_json[part].pop(name, None)
    else:
        folder_json[part][name] = value
    model_dir = _model_dir()
    checkpoint = _read(_nnunet_checkpoint(), model_dir)
    if folder_json[part].get(name) == before:
        check_checkpoint_belongs(checkpoint, model_dir, plans=_plans(), dataset_json=folder_json)
        return
    message = _belongs_error(
        checkpoint, model_dir, _plans(), folder_json, f"init_args.dataset_json.{part}.{name}"
    )
    assert f", as in {model_dir / 'dataset.json'}; got " in message
