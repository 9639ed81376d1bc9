"""A case's properties (``CASE.pkl``) beside its probabilities: found, loaded and checked.

nnU-Net writes ``CASE.pkl`` next to ``CASE.npz`` (``--save_probabilities``); its geometry is
what the reader/writer of ``plans.json`` needs to write the case's label map. It is read with
the restricted unpickler (:func:`~nnunet_ext.io.safe_pickle.load_properties`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ext.io.cases import case_id_from_filename
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.safe_pickle import load_properties

__all__ = [
    "GEOMETRY_KEYS",
    "check_case_properties",
    "load_case_properties",
    "properties_path",
]


def properties_path(npz_path: str | os.PathLike[str]) -> Path:
    """Return the ``.pkl`` that belongs to an ``.npz``: ``X.npz`` -> ``X.pkl``, else ``CASE.pkl``.

    Raises:
        FileNotFoundError: If neither exists.

    Examples:
        >>> properties_path("/nonexistent/case.npz")
        Traceback (most recent call last):
        ...
        FileNotFoundError: properties file not found for /nonexistent/case.npz: ...
    """
    npz = Path(npz_path)
    candidates = [npz.with_name(npz.name[: -len(".npz")] + ".pkl")]
    case_pkl = npz.with_name(case_id_from_filename(npz.name, ".npz") + ".pkl")
    if case_pkl not in candidates:
        candidates.append(case_pkl)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"properties file not found for {npz}: expected {' or '.join(c.name for c in candidates)}. "
        "nnUNetv2_predict --save_probabilities writes it next to the .npz."
    )


#: The ``.pkl`` entries each nnU-Net reader/writer needs to write a label map.
GEOMETRY_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "SimpleITKIO": ("sitk_stuff", ("spacing", "origin", "direction")),
    "SimpleITKIOWithReorient": (
        "sitk_stuff",
        ("spacing", "origin", "direction", "original_orientation"),
    ),
    "NibabelIO": ("nibabel_stuff", ("original_affine",)),
    "NibabelIOWithReorient": ("nibabel_stuff", ("original_affine", "reoriented_affine")),
    "Tiff3DIO": ("", ("spacing",)),
    "NaturalImage2DIO": ("", ()),
}


def check_case_properties(
    properties: dict[str, Any],
    path: str | os.PathLike[str],
    *,
    reader_writer: str | None = None,
    shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Check a case's ``.pkl`` for the geometry the configured reader/writer needs.

    Args:
        properties: As loaded by :func:`~nnunet_ext.io.safe_pickle.load_properties`.
        path: The ``.pkl``, for messages.
        reader_writer: ``plans["image_reader_writer"]``; ``None`` checks nothing reader-specific.
        shape: The spatial shape of the case's probabilities; must be a permutation of
            ``shape_before_cropping`` (nnU-Net exports at the original geometry, in the reader's
            axis order) when that key is present.

    Returns:
        ``properties``.

    Raises:
        InputError: Naming the missing or malformed key.

    Examples:
        >>> check_case_properties({"spacing": [1, 1, 1]}, "c.pkl", reader_writer="SimpleITKIO")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: c.pkl: sitk_stuff must be present ...
    """
    if reader_writer is not None and reader_writer in GEOMETRY_KEYS:
        _check_geometry_keys(properties, path, reader_writer)
    sitk_stuff = properties.get("sitk_stuff")
    if reader_writer in ("SimpleITKIO", "SimpleITKIOWithReorient") and isinstance(sitk_stuff, dict):
        _check_sitk_geometry(sitk_stuff, path, shape)
    if shape is not None and "shape_before_cropping" in properties:
        _check_shape_before_cropping(properties["shape_before_cropping"], path, shape)
    return properties


def _check_geometry_keys(
    properties: dict[str, Any], path: str | os.PathLike[str], reader_writer: str
) -> None:
    """The :data:`GEOMETRY_KEYS` of ``reader_writer`` are there, as finite numbers (or a code)."""
    fix = "Use the .pkl nnUNetv2_predict --save_probabilities wrote next to the .npz."
    outer, inner = GEOMETRY_KEYS[reader_writer]
    container: Any = properties
    if outer:
        container = properties.get(outer)
        if not isinstance(container, dict):
            found = "nothing" if outer not in properties else type(container).__name__
            raise InputError(
                path,
                f"present (as a dict; {reader_writer} needs it to write label maps)",
                found,
                key=outer,
                fix=fix,
            )
    for name in inner:
        value = container.get(name)
        where = f"{outer}.{name}" if outer else name
        if value is None:
            raise InputError(
                path, f"present ({reader_writer} needs it)", "nothing", key=where, fix=fix
            )
        if name == "original_orientation":  # a DICOM orientation code such as "LPS"
            if not isinstance(value, str) or not value:
                raise InputError(
                    path, "an orientation code such as 'LPS'", repr(value)[:60], key=where
                )
            continue
        try:
            numbers = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            numbers = None
        if numbers is None or numbers.size == 0 or not np.all(np.isfinite(numbers)):
            raise InputError(
                path, "finite numbers", f"{type(value).__name__} {value!r:.60}", key=where
            )


def _check_shape_before_cropping(
    before: Any, path: str | os.PathLike[str], shape: Sequence[int]
) -> None:
    """``shape_before_cropping`` is the probabilities' spatial shape, in some axis order."""
    try:
        expected = sorted(int(v) for v in before)
    except (TypeError, ValueError):
        raise InputError(
            path, "a list of integers", repr(before)[:60], key="shape_before_cropping"
        ) from None
    if expected != sorted(int(v) for v in shape):
        raise InputError(
            path,
            f"the shape of the probabilities {tuple(shape)} (in some axis order)",
            f"{tuple(before)}",
            key="shape_before_cropping",
            fix="The .pkl and the .npz belong to different cases or predictions; "
            "re-export them together.",
        )


def _check_sitk_geometry(
    sitk_stuff: dict[str, Any], path: str | os.PathLike[str], shape: Sequence[int] | None
) -> None:
    """Spacing, origin and direction must fit one image (what nnU-Net's writer asserts)."""
    dim = len(np.atleast_1d(np.asarray(sitk_stuff["spacing"], dtype=np.float64)))
    if not 2 <= dim <= 3:
        raise InputError(path, "2 or 3 values", f"{dim}", key="sitk_stuff.spacing")
    for name, size in (("origin", dim), ("direction", dim * dim)):
        found = np.asarray(sitk_stuff[name], dtype=np.float64).size
        if found != size:
            raise InputError(
                path, f"{size} values (spacing has {dim})", f"{found}", key=f"sitk_stuff.{name}"
            )
    spacing = np.asarray(sitk_stuff["spacing"], dtype=np.float64)
    if not np.all(spacing > 0):
        raise InputError(
            path, "positive voxel sizes", f"{tuple(spacing.tolist())}", key="sitk_stuff.spacing"
        )
    direction = np.asarray(sitk_stuff["direction"], dtype=np.float64).reshape(dim, dim)
    if abs(float(np.linalg.det(direction))) < 1e-6:
        raise InputError(
            path,
            "a direction matrix with a non-zero determinant",
            f"{tuple(direction.ravel().tolist())}",
            key="sitk_stuff.direction",
        )
    if shape is not None and dim == 2 and (len(shape) != 3 or shape[0] != 1):
        raise InputError(
            path,
            f"3 values for probabilities of spatial shape {tuple(shape)}",
            "2",
            key="sitk_stuff.spacing",
        )


def load_case_properties(
    npz_path: str | os.PathLike[str],
    *,
    reader_writer: str | None = None,
    shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Load and check the ``.pkl`` belonging to an ``.npz`` with the restricted unpickler.

    See :func:`check_case_properties` for ``reader_writer`` and ``shape``.
    """
    path = properties_path(npz_path)
    return check_case_properties(
        load_properties(path), path, reader_writer=reader_writer, shape=shape
    )
