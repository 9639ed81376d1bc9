"""The fused probabilities a ``min_probability`` step reads: ``CASE.npz`` beside the labels.

nnU-Net writes them with ``--save_probabilities`` (``nnUNetv2_predict``, ``nnUNetv2_ensemble``,
the CV folders of ``nnUNetv2_find_best_configuration``); ``nnunet-ext predict`` and
``ensemble`` do too. They are read through :func:`nnunet_ext.io.read_probabilities` (checked
there: finite values in [0, 1], an intact file).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io.probabilities import read_probabilities

__all__ = ["find_probability_files", "read_case_probabilities"]


def find_probability_files(
    probabilities_dir: str | os.PathLike[str], case_ids: Iterable[str]
) -> dict[str, Path]:
    """``CASE.npz`` (or nnU-Net's older ``CASE.nii.gz.npz``) of every case, checked up front.

    Raises:
        NotADirectoryError: If ``probabilities_dir`` is not a folder.
        FileNotFoundError: Naming the first case without a file.
    """
    folder = Path(probabilities_dir)
    if not folder.is_dir():
        raise NotADirectoryError(
            f"probabilities_dir must be a folder of CASE.npz files; got {str(folder)!r}."
        )
    found: dict[str, Path] = {}
    missing = []
    for case in case_ids:
        candidates = [folder / f"{case}.npz", *sorted(folder.glob(f"{case}.*.npz"))]
        existing = [p for p in candidates if p.is_file()]
        if existing:
            found[case] = existing[0]
        else:
            missing.append(case)
    if missing:
        raise FileNotFoundError(
            f"probabilities_dir {str(folder)!r} has no {missing[0]}.npz ({len(missing)} case(s) "
            "missing). Predict with save_probabilities=True (nnU-Net: save_probabilities) or "
            "pass the folder that holds them."
        )
    return found


def read_case_probabilities(
    path: str | os.PathLike[str], shape: tuple[int, ...]
) -> NDArray[np.float32]:
    """Read one ``CASE.npz`` and check that it is ``(C, *shape)`` (the label map's shape).

    Raises:
        ValueError: Naming the file, when the shape differs.
    """
    probabilities: NDArray[Any] = read_probabilities(path)
    if probabilities.shape[1:] != tuple(shape):
        raise ValueError(
            f"{path}: probabilities must be (C, {', '.join(map(str, shape))}) like the label "
            f"map; got {probabilities.shape}. Pass the probabilities of these predictions."
        )
    return probabilities
