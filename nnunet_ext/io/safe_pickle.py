"""Read nnU-Net's per-case ``.pkl`` properties without letting the file run code.

``pickle.load`` executes whatever a pickle asks for. Prediction folders travel between machines
and people, so we only allow the globals that nnU-Net's properties really contain: builtin
containers and numbers, and numpy arrays, scalars and dtypes.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

__all__ = ["Opaque", "UnsafePickleError", "load_properties", "opaque_loads", "safe_loads"]

_ALLOWED_BUILTINS = frozenset(
    {
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "int",
        "float",
        "complex",
        "str",
        "bytes",
        "bytearray",
        "bool",
        "slice",
        "range",
    }
)
_NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.dtypes")
_ALLOWED_NUMPY_NAMES = frozenset({"_reconstruct", "scalar", "ndarray", "dtype"})


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed numpy/builtin set."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = (
            (module == "builtins" and name in _ALLOWED_BUILTINS)
            or (module == "collections" and name == "OrderedDict")
            or (
                module in _NUMPY_MODULES
                and (name in _ALLOWED_NUMPY_NAMES or name.endswith("DType"))
            )
        )
        if not allowed:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: only numpy arrays/scalars and builtin "
                "types are allowed in nnU-Net properties files"
            )
        return super().find_class(module, name)


def safe_loads(data: bytes) -> Any:
    """Unpickle ``data`` allowing only numpy and builtin types.

    Args:
        data: Pickled bytes.

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: If the pickle references any other global (e.g. ``os.system``).

    Examples:
        >>> import numpy as np
        >>> safe_loads(pickle.dumps({"spacing": np.array([1.0, 2.0])}))["spacing"]
        array([1., 2.])
        >>> safe_loads(pickle.dumps(eval))
        Traceback (most recent call last):
        ...
        nnunet_ext.io.safe_pickle.UnsafePickleError: refusing to load global builtins.eval: ...
    """
    return _RestrictedUnpickler(io.BytesIO(data)).load()


class Opaque:
    """An inert stand-in for an object of any class outside builtin containers.

    :func:`opaque_loads` returns it for every such global (and calls nothing): a tensor, a
    storage, a ``torch.device``, a numpy array. A global referenced as such (a function or
    class, not an instance) is read as the class :class:`Opaque` itself.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return "Opaque()"


class _OpaqueUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module == "builtins" and name in _ALLOWED_BUILTINS) or (
            module == "collections" and name == "OrderedDict"
        ):
            return super().find_class(module, name)
        return Opaque

    def persistent_load(self, pid: Any) -> Opaque:
        return Opaque()


def opaque_loads(data: bytes) -> Any:
    """Unpickle the structure of ``data``: builtin values, and :class:`Opaque` for the rest.

    Nothing outside the builtin containers is imported or called, so this reads what a
    ``torch.save`` pickle holds (its dict keys, strings, numbers) without torch and without
    running code; tensors and their storages (persistent ids) become :class:`Opaque`.

    Raises:
        pickle.UnpicklingError, EOFError, ValueError: For a damaged pickle (among others; the
            caller reports any exception as "not a readable pickle").

    Examples:
        >>> import datetime
        >>> opaque_loads(pickle.dumps({"epoch": 3, "when": datetime.date(2026, 1, 1)}))
        {'epoch': 3, 'when': Opaque()}
        >>> opaque_loads(pickle.dumps([print])) == [Opaque]  # a global itself: the class
        True
    """
    return _OpaqueUnpickler(io.BytesIO(data)).load()


def load_properties(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load an nnU-Net ``CASE.pkl`` properties file safely.

    Args:
        path: The ``.pkl`` written by ``nnUNetv2_predict --save_probabilities`` or ``--npz``.

    Returns:
        The properties dict (``sitk_stuff`` or ``nibabel_stuff``, ``spacing``, ...).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a readable pickle of a dict, or asks for unsafe globals.
    """
    file = Path(path)
    try:
        obj = safe_loads(file.read_bytes())
    except FileNotFoundError:
        raise
    except UnsafePickleError as err:
        raise ValueError(
            f"{file}: {err}. Delete this file; it was not written by nnU-Net."
        ) from err
    except Exception as err:  # truncated or garbage pickles raise many different types
        raise ValueError(
            f"{file}: not a readable properties pickle ({type(err).__name__}: {err}). "
            "Re-export the prediction with --save_probabilities."
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"{file}: expected a dict of properties; got {type(obj).__name__}.")
    return obj
