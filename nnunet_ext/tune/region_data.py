"""Cross-validation data of region-based (sigmoid) models, read once into a compact form.

A region model's ``CASE.npz`` holds one sigmoid probability per region channel (``dataset.json``
``labels`` with tuples of label values, and ``regions_class_order``). Every threshold the region
tuner tries is at least :data:`MIN_THRESHOLD`, so a voxel where every member gives every channel
at most that is background under every candidate: only the other ("active") voxels are kept,
with their reference label; the rest leave only their count of reference voxels per region.

Deciding on a metric other than Dice (distances, lesion-wise metrics) needs each case's whole
label map: :func:`load_region_data` with ``volumes=True`` also keeps each case's
:class:`CaseVolume` (its reference, spacing and which voxels are active), from which
:func:`CaseVolume.label_map` rebuilds the deployed label map exactly (an inactive voxel is
background under every candidate; a voxel of the ignore label is background there too, and
the metric leaves it out through its ``ignore_label``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._parallel import map_cases
from nnunet_ext.evaluate.labels import find_dataset_json
from nnunet_ext.io import LabelSpec, list_case_files, load_dataset_json, read_labels
from nnunet_ext.io.cases import pair_probability_files
from nnunet_ext.io.probabilities import read_probabilities
from nnunet_ext.tune.reading import check_tune_inputs, common_cases

__all__ = ["MIN_THRESHOLD", "CaseVolume", "RegionCVData", "load_region_data", "region_dataset"]

#: The lowest decision threshold the region tuner tries.
MIN_THRESHOLD = 0.01


@dataclass(frozen=True)
class CaseVolume:
    """One case's whole reference, to score label maps rebuilt from its active voxels.

    Attributes:
        reference: The reference label map (array axis order).
        spacing: Voxel size per array axis (mm).
        active: ``np.packbits`` of the flat mask of the case's active (kept) voxels.
    """

    reference: NDArray[np.integer]
    spacing: tuple[float, ...]
    active: NDArray[np.uint8]

    def label_map(self, active_labels: NDArray[np.integer]) -> NDArray[np.integer]:
        """The whole label map: ``active_labels`` at the active voxels, background elsewhere.

        Examples:
            >>> volume = CaseVolume(np.zeros((2, 2), np.uint8), (1.0, 1.0),
            ...                     np.packbits([False, True, False, True]))
            >>> volume.label_map(np.array([2, 3])).tolist()
            [[0, 2], [0, 3]]
        """
        size = self.reference.size
        mask = np.unpackbits(self.active, count=size).astype(bool)
        out = np.zeros(size, dtype=active_labels.dtype)
        out[mask] = active_labels
        return out.reshape(self.reference.shape)


@dataclass(frozen=True)
class RegionCVData:
    """The active voxels of every case, concatenated (see the module docstring).

    Attributes:
        probabilities: ``(M, R, N)`` float32 member probabilities of the active voxels.
        reference: ``(N,)`` reference label of each active voxel.
        offsets: ``(cases + 1,)`` start of each case's voxels in ``N``.
        inactive_reference: ``(cases, R)`` reference voxels of each region among the voxels
            left out (background under every candidate: false negatives).
        regions: The label values of each region channel.
        order: ``regions_class_order``: the label each channel writes.
        volumes: Each case's :class:`CaseVolume` (``load_region_data(..., volumes=True)``), or
            ``None``.
    """

    probabilities: NDArray[np.float32]
    reference: NDArray[np.integer]
    offsets: NDArray[np.int64]
    inactive_reference: NDArray[np.int64]
    regions: tuple[tuple[int, ...], ...]
    order: tuple[int, ...]
    volumes: tuple[CaseVolume, ...] | None = None

    @property
    def num_cases(self) -> int:
        """Cases."""
        return int(self.offsets.size - 1)

    @property
    def num_models(self) -> int:
        """Members ``M``."""
        return int(self.probabilities.shape[0])

    def case(self, index: int) -> slice:
        """The voxels of case ``index``."""
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))


def region_dataset(
    input_dirs: Sequence[str | os.PathLike[str]],
    reference_dir: str | os.PathLike[str],
    dataset_json: str | os.PathLike[str] | None = None,
) -> tuple[LabelSpec, Path] | None:
    """The ``dataset.json`` labels when they define regions (``None`` for softmax models).

    Examples:
        >>> region_dataset(["/nonexistent"], "/nonexistent") is None
        True
    """
    path = (
        Path(dataset_json)
        if dataset_json
        else find_dataset_json(Path(input_dirs[0]), Path(reference_dir))
    )
    if path is None or not path.is_file():
        return None
    spec = load_dataset_json(path)
    return (spec, path) if spec.has_regions else None


def region_channels(spec: LabelSpec) -> tuple[list[str], list[tuple[int, ...]]]:
    """Each region channel's name and label values, in ``dataset.json`` order.

    Examples:
        >>> spec = LabelSpec(labels={"background": 0, "WT": (1, 2, 3), "TC": (2, 3), "ET": 3},
        ...                  regions_class_order=(1, 2, 3))
        >>> region_channels(spec)
        (['WT', 'TC', 'ET'], [(1, 2, 3), (2, 3), (3,)])
    """
    names, regions = [], []
    for name, value in spec.labels.items():
        values = value if isinstance(value, tuple) else (int(value),)
        if name == "ignore" or set(values) == {0}:
            continue
        names.append(name)
        regions.append(tuple(int(v) for v in values))
    return names, regions


def _compact_job(
    job: tuple[list[str], str, tuple[tuple[int, ...], ...], int | None, bool],
) -> tuple[NDArray[np.float32], NDArray[np.integer], NDArray[np.int64], CaseVolume | None]:
    """Worker: one case of every member, reduced to its active voxels (top-level for spawn)."""
    npz_files, reference_file, regions, ignore_label, volumes = job
    image = read_labels(reference_file)
    reference = image.array
    members = [read_probabilities(f) for f in npz_files]
    for file, member in zip(npz_files, members, strict=True):
        if member.shape[1:] != reference.shape or member.shape[0] != len(regions):
            raise ValueError(
                f"{file}: probabilities must have shape ({len(regions)}, *{reference.shape}) "
                f"(one channel per region of dataset.json, the geometry of {reference_file}); "
                f"got {member.shape}. Use CV predictions of nnUNetv2_train --npz."
            )
    flat_reference = reference.reshape(-1)
    active = np.zeros(flat_reference.size, dtype=bool)
    for member in members:
        active |= (member.reshape(len(regions), -1) > MIN_THRESHOLD).any(axis=0)
    scored = np.ones_like(active) if ignore_label is None else flat_reference != ignore_label
    keep = active & scored
    left = ~active & scored
    inactive = np.array(
        [int(np.isin(flat_reference[left], region).sum()) for region in regions], dtype=np.int64
    )
    stacked = np.stack([m.reshape(len(regions), -1)[:, keep] for m in members]).astype(np.float32)
    volume = (
        CaseVolume(reference, tuple(float(s) for s in reversed(image.spacing)), np.packbits(keep))
        if volumes
        else None
    )
    return stacked, flat_reference[keep], inactive, volume


def load_region_data(
    input_dirs: Sequence[str | os.PathLike[str]],
    reference_dir: str | os.PathLike[str],
    label_spec: LabelSpec,
    *,
    num_workers: int = 1,
    volumes: bool = False,
) -> tuple[RegionCVData, list[str], dict[str, list[str]], list[str]]:
    """Read region CV probabilities and references once into :class:`RegionCVData`.

    Args:
        input_dirs: One CV probability folder per model (``CASE.npz``).
        reference_dir: Reference label files.
        label_spec: The region ``dataset.json`` (see :func:`region_dataset`).
        num_workers: Processes decompressing cases.
        volumes: Also keep each case's :class:`CaseVolume` (to score whole label maps).

    Returns:
        ``(data, cases, left_out, region_names)``.

    Raises:
        ValueError: For fewer than 2 models, no common case, or probabilities that do not
            have one channel per region (the message names the file).
    """
    ref_root = check_tune_inputs(input_dirs, reference_dir)
    if label_spec.regions_class_order is None:  # LabelSpec refuses this; for mypy
        raise ValueError("dataset.json defines regions but no regions_class_order.")
    names, regions = region_channels(label_spec)
    paired = pair_probability_files(input_dirs)
    references, _ = list_case_files(ref_root, label_spec.file_ending)
    cases, left_out = common_cases(paired, references, ref_root, label_spec.file_ending)
    jobs = [
        (
            [str(p) for p in paired.cases[case]],
            str(references[case]),
            tuple(regions),
            label_spec.ignore_label,
            volumes,
        )
        for case in cases
    ]
    parts = map_cases(_compact_job, jobs, num_workers=num_workers, desc="read CV")
    sizes = [p[1].size for p in parts]
    data = RegionCVData(
        probabilities=np.concatenate([p[0] for p in parts], axis=2),
        reference=np.concatenate([p[1] for p in parts]),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        inactive_reference=np.stack([p[2] for p in parts]),
        regions=tuple(regions),
        order=tuple(int(v) for v in label_spec.regions_class_order),
        volumes=tuple(p[3] for p in parts if p[3] is not None) if volumes else None,
    )
    return data, cases, left_out, names
