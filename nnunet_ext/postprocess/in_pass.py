"""A postprocessing plan applied in the pass: ``predict --plan`` and ``ensemble --plan``.

:func:`write_through_plan` applies the plan to the case's labels in memory (with the fused
probabilities for ``min_probability``) and writes the one label file, byte-identical to what
``postprocess apply`` writes from the plain output (the labels written by nnU-Net's writer):
no plain label file is written and none is read back.

``postprocess apply`` sees the plain file: its array as SimpleITK reads it and the header
nnU-Net's writer gave it. Where the writer stores nnU-Net's array as it is (``SimpleITKIO``,
``NibabelIO``, the 2D and TIFF writers), both follow from the case's geometry alone: a probe of
2 x 3 x 4 voxels (24 distinct values) written by the same writer with the same properties shows
that the order is kept, and gives the header, which :func:`nnunet_ext.io.write_labels` copies
with the labels' dimensions (``any_shape``). A writer that reorients (``NibabelIOWithReorient``
on an image not stored in RAS order) moves the origin by the flipped extents, so its header
depends on the shape: there the plain labels are written to a private temporary folder and
read back, as before. The probe (and that file) never appear in the output folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io import TEMP_PREFIX, read_labels, write_labels
from nnunet_ext.io.labels import MAX_UINT8_LABEL, as_exact_labels
from nnunet_ext.postprocess.folders import postprocess_file
from nnunet_ext.postprocess.plan import PostprocessingPlan, apply_plan

__all__ = ["probe_array", "same_order", "write_through_plan"]

#: Probe extents of the axes that are not singletons (distinct, so that a permutation shows).
PROBE_EXTENTS = (2, 3, 4)


def probe_array(shape: tuple[int, ...]) -> NDArray[np.uint8]:
    """A small array of distinct values with the singleton axes of ``shape``.

    Examples:
        >>> probe_array((1, 40, 50)).shape, probe_array((9, 40, 50)).max()
        ((1, 3, 4), np.uint8(23))
    """
    extents = tuple(1 if n == 1 else PROBE_EXTENTS[i] for i, n in enumerate(shape))
    return np.arange(int(np.prod(extents)), dtype=np.uint8).reshape(extents)


def same_order(probe: NDArray[Any], read: NDArray[Any]) -> bool:
    """Whether the file holds the probe's voxels in nnU-Net's order (singleton axes aside).

    Examples:
        >>> probe = probe_array((1, 6, 7))
        >>> same_order(probe, probe[0]), same_order(probe, probe[:, ::-1])
        (True, False)
    """
    return probe.size == read.size and np.array_equal(probe.reshape(read.shape), read)


def write_through_plan(
    write: Callable[[NDArray[Any], Path], Any],
    labels: NDArray[Any],
    destination: str | os.PathLike[str],
    plan: PostprocessingPlan,
    *,
    probabilities: NDArray[np.floating[Any]] | None = None,
) -> int:
    """Write a case's labels through ``plan`` as ``postprocess apply`` writes the plain output.

    Args:
        write: ``write(array, path)`` writes labels as the plain output would hold them
            (nnU-Net's ``write_seg`` with the case's properties).
        labels: The case's labels in nnU-Net's array order (not modified).
        destination: The label file (written atomically, once).
        plan: The postprocessing plan.
        probabilities: The fused probabilities ``(C, *labels.shape)`` for ``min_probability``.

    Returns:
        The number of voxels the plan changed.

    Raises:
        ValueError: For labels above 255, or a step whose input is missing (naming it).
    """
    final = Path(destination)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as folder:
        probe = probe_array(labels.shape)
        probe_file = Path(folder) / f"probe-{final.name}"
        write(probe, probe_file)
        like = read_labels(probe_file)
        if not same_order(probe, like.array):  # a reorienting writer: its header needs the shape
            if plan.needs_probabilities:
                step = next(s for s in plan.steps if s.needs_probabilities)
                raise ValueError(
                    f"{final}: step '{step.describe()}' needs the fused probabilities in the "
                    "label file's voxel order, but this dataset's label writer reorients the "
                    "labels (NibabelIOWithReorient?). Use a plan without min_probability, or "
                    "postprocess the folder with probabilities in the file's order."
                )
            plain_file = Path(folder) / final.name
            write(labels, plain_file)
            return postprocess_file(plain_file, final, plan)
        plain = as_exact_labels(labels.reshape(_file_shape(labels.shape, like.array.shape)))
        fused = None
        if probabilities is not None:
            fused = probabilities.reshape((probabilities.shape[0], *plain.shape))
        result = apply_plan(plain, plan, spacing=like.spacing, probabilities=fused)
        if result.size and int(result.max()) > MAX_UINT8_LABEL:
            raise ValueError(
                f"{final}: labels must be <= {MAX_UINT8_LABEL} to be written as uint8; found "
                f"{int(result.max())}."
            )
        write_labels(result, final, like=like, exact_nifti_header=True, any_shape=True)
    return int(np.count_nonzero(result != plain))


def _file_shape(shape: tuple[int, ...], probe_read: tuple[int, ...]) -> tuple[int, ...]:
    """An array's shape as the file holds it, given the probe's shape read back.

    Axes keep their order, singleton axes may be dropped: each probe extent names the array axis
    it stands for.
    """
    return tuple(1 if e == 1 else shape[PROBE_EXTENTS.index(e)] for e in probe_read)
