"""A flagged case at a glance: three orthogonal slices with the members' contours (PNG).

The slices cross where the members disagree: the centre of the voxels of the flagged labels where
some member's argmax differs from the fused label (of the foreground when they agree). The fused
labels are filled in the colours of ``submission build``'s preview, each member's label borders
drawn as contours in its own colour, over the entropy of the fused probabilities in grey.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.io import atomic_path

__all__ = ["LABEL_COLOURS", "MEMBER_COLOURS", "focus_point", "render_case_figure"]

#: Fill colours of labels 1, 2, ... (those of ``submission build``'s preview).
LABEL_COLOURS = (
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
)
#: Contour colours of members 0, 1, ...
MEMBER_COLOURS = ("#00e5ff", "#ff9100", "#76ff03", "#ff4081", "#ffffff", "#ffea00")


def focus_point(
    labels: NDArray[np.integer[Any]],
    member_labels: Sequence[NDArray[np.integer[Any]]],
    label_ids: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """The voxel the slices cross: centre of the disagreement, else of the foreground.

    Args:
        labels: The fused labels.
        member_labels: Each member's argmax map.
        label_ids: Count only disagreement on these labels (fused or a member's); ``None``: all.

    Examples:
        >>> labels = np.zeros((3, 5, 5), dtype=np.uint8); labels[1, 1:4, 1:4] = 1
        >>> other = labels.copy(); other[2, 4, 4] = 2; other[0, 0, 0] = 1
        >>> focus_point(labels, [labels]), focus_point(labels, [labels, other], [2])
        ((1, 2, 2), (2, 4, 4))
    """
    differs = np.zeros(labels.shape, dtype=bool)
    for member in member_labels:
        here = member != labels
        if label_ids is not None:
            here &= np.isin(member, label_ids) | np.isin(labels, label_ids)
        differs |= here
    mask = differs if differs.any() else labels > 0
    if not mask.any():
        return tuple(s // 2 for s in labels.shape)
    return tuple(round(float(c)) for c in np.argwhere(mask).mean(axis=0))


def _views(array: NDArray[Any], point: Sequence[int]) -> list[NDArray[Any]]:
    """The slices through ``point`` along each axis of a 3D array (the array itself in 2D)."""
    if array.ndim == 2:
        return [array]
    views = [array[point[0]], array[:, point[1]], array[:, :, point[2]]]
    return [v for v, size in zip(views, array.shape, strict=True) if size > 1] or [views[0]]


def _aspects(ndim: int, spacing: Sequence[float] | None, count: int) -> list[float]:
    """Height/width of a pixel in each view (axis-0, axis-1, axis-2 slices).

    Examples:
        >>> _aspects(3, (5.0, 1.0, 2.0), 3)
        [0.5, 2.5, 5.0]
    """
    if spacing is None or len(spacing) != ndim or ndim != 3 or count != 3:
        return [1.0] * count
    z, y, x = (float(s) for s in spacing)
    return [y / x, z / x, z / y]


def render_case_figure(
    labels: NDArray[np.integer[Any]],
    member_labels: Sequence[NDArray[np.integer[Any]]],
    background: NDArray[Any],
    path: str | os.PathLike[str],
    *,
    member_names: Sequence[str],
    title: str,
    label_ids: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
) -> Path:
    """Write the PNG of one case: orthogonal slices, fused labels filled, members as contours.

    Args:
        labels: Fused labels (2D or 3D).
        member_labels: Each member's argmax map, same shape.
        background: A grey-scale map of the same shape (e.g. the entropy map).
        path: Destination PNG (written atomically; its folder is created).
        member_names: The members' names for the legend.
        title: The figure title (the case ID).
        label_ids: The slices cross the members' disagreement on these labels (the flagged
            ones); ``None``: on any label.
        spacing: Voxel size in array axis order (nnU-Net's ``properties["spacing"]``), so
            that the slices keep their physical proportions; ``None``: square pixels.

    Returns:
        The PNG path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    point = focus_point(labels, member_labels, label_ids)
    fused_views = _views(labels, point)
    member_views = [_views(m, point) for m in member_labels]
    background_views = _views(background, point)
    figure = Figure(figsize=(3.0 * len(fused_views), 3.4), dpi=80)
    FigureCanvasAgg(figure)
    colours = ListedColormap(list(LABEL_COLOURS))
    top = int(max(int(labels.max(initial=0)), *(int(m.max(initial=0)) for m in member_labels)))
    aspects = _aspects(labels.ndim, spacing, len(fused_views))
    for index, fused in enumerate(fused_views):
        axes = figure.add_subplot(1, len(fused_views), index + 1)
        axes.imshow(
            background_views[index],
            cmap="gray",
            vmin=0,
            vmax=255,
            interpolation="nearest",
            aspect=aspects[index],
        )
        overlay = np.ma.masked_equal(np.asarray(fused, dtype=np.int32), 0)
        axes.imshow(
            (overlay - 1) % colours.N,
            cmap=colours,
            vmin=0,
            vmax=colours.N - 1,
            alpha=0.35,
            interpolation="nearest",
            aspect=aspects[index],
        )
        for member, views in enumerate(member_views):
            view = np.asarray(views[index], dtype=np.float32)
            if top > 0 and min(view.shape) > 1 and np.ptp(view) > 0:
                axes.contour(
                    view,
                    levels=np.arange(0.5, top + 0.5),
                    colors=MEMBER_COLOURS[member % len(MEMBER_COLOURS)],
                    linewidths=1.0,
                )
        axes.set_axis_off()
    handles = [
        Line2D([0], [0], color=MEMBER_COLOURS[m % len(MEMBER_COLOURS)], label=name)
        for m, name in enumerate(member_names)
    ]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    figure.suptitle(title, fontsize=9)
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(final) as tmp:
        figure.savefig(tmp, format="png")
    return final
