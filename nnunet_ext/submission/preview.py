"""A contact sheet of mid-slices with label overlays, one panel per case (PNG, matplotlib Agg)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io import atomic_path

__all__ = ["mid_slice", "render_preview"]


def mid_slice(array: NDArray[Any]) -> NDArray[Any]:
    """Return the middle slice along the first axis of a 3D array (a 2D array as is).

    Examples:
        >>> mid_slice(np.arange(27).reshape(3, 3, 3))[0].tolist()
        [9, 10, 11]
    """
    return array[array.shape[0] // 2] if array.ndim == 3 else array


def render_preview(
    panels: Sequence[tuple[str, NDArray[Any], NDArray[Any]]],
    path: str | os.PathLike[str],
    *,
    columns: int = 4,
) -> Path:
    """Write a PNG grid of ``(case, image_slice, label_slice)`` panels, labels overlaid in colour.

    Args:
        panels: Case name, 2D image slice and 2D label slice of the same shape.
        path: Destination PNG (written atomically).
        columns: Panels per row.

    Returns:
        The PNG path.

    Raises:
        ValueError: If ``panels`` is empty or a slice pair differs in shape.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("panels must hold at least one case; got none.")
    for case, image, labels in panels:
        if image.shape != labels.shape:
            raise ValueError(
                f"{case}: image slice {image.shape} and label slice {labels.shape} must match."
            )
    ncols = max(1, min(columns, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    figure = Figure(figsize=(2.4 * ncols, 2.6 * nrows), dpi=80)
    FigureCanvasAgg(figure)
    colours = ListedColormap(
        ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6"]
    )
    for index, (case, image, labels) in enumerate(panels):
        axes = figure.add_subplot(nrows, ncols, index + 1)
        axes.imshow(np.asarray(image, dtype=np.float32), cmap="gray", interpolation="nearest")
        overlay = np.ma.masked_equal(np.asarray(labels, dtype=np.int32), 0)
        axes.imshow(
            (overlay - 1) % colours.N,
            cmap=colours,
            vmin=0,
            vmax=colours.N - 1,
            alpha=0.45,
            interpolation="nearest",
        )
        axes.set_title(case, fontsize=8)
        axes.set_axis_off()
    figure.tight_layout()
    final = Path(path)
    with atomic_path(final) as tmp:
        figure.savefig(tmp, format="png")
    return final
