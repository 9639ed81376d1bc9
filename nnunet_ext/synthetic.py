"""Tiny synthetic data in nnU-Net's formats, made in code: for the demo, tests and benchmarks.

Two generators:

* :func:`make_raw_dataset` writes an nnU-Net raw dataset (``imagesTr``, ``labelsTr``,
  ``imagesTs``, ``labelsTs``, optionally ``imagesVal``/``labelsVal``, ``dataset.json``) of
  cardiac-like 3D cases with a myocardium (label 1), an LV (2) and a small RV (3) missing in
  some cases, anisotropic spacing: nested blobs (:func:`make_case`) or, for the demo, a
  short-axis stack on which 2D and 3D models differ (:func:`make_short_axis_case`).
* :func:`write_prediction_folder` writes what ``nnUNetv2_predict --save_probabilities`` writes:
  ``CASE.npz`` (key ``probabilities``, float32, ``(C, z, y, x)``), ``CASE.pkl`` (properties),
  the label file, ``dataset.json`` and ``plans.json``.
* :func:`make_cv_folders` writes cross-validation probability folders of models that are each
  good at different labels, with a reference folder: input for ``nnunet-ext tune``.

Nothing here imports torch; SimpleITK is imported when a function runs.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_LABELS",
    "make_case",
    "make_cv_folders",
    "make_raw_dataset",
    "make_short_axis_case",
    "minimal_plans",
    "model_probabilities",
    "nnunet_environment",
    "sitk_properties",
    "write_dataset_json",
    "write_labels_image",
    "write_prediction_folder",
]

#: Labels of the synthetic cardiac-like dataset.
DEFAULT_LABELS: dict[str, int] = {"background": 0, "myocardium": 1, "LV": 2, "RV": 3}


def make_case(
    rng: np.random.Generator,
    *,
    shape: tuple[int, int, int] = (16, 48, 48),
    with_small_label: bool = True,
    noise: float = 0.35,
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Make one image/label pair (z, y, x) with nested structures.

    Args:
        rng: Random generator (positions, radii, noise).
        shape: Array shape (z, y, x).
        with_small_label: Whether the small label 3 is present.
        noise: Standard deviation of the Gaussian intensity noise.

    Returns:
        ``(image, labels)``: float32 intensities and uint8 labels 0..3.
    """
    z, y, x = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij")
    center = np.array(shape, dtype=np.float32) / 2 + rng.uniform(-3, 3, size=3).astype(np.float32)
    center[0] = shape[0] / 2
    r_inner = rng.uniform(0.16, 0.22) * shape[1]
    r_outer = r_inner + rng.uniform(3.0, 5.0)
    # anisotropic: slices are thick, so the "heart" spans most of z
    dist = np.sqrt(
        ((z - center[0]) * (shape[1] / shape[0]) * 0.5) ** 2
        + (y - center[1]) ** 2
        + (x - center[2]) ** 2
    )
    labels = np.zeros(shape, dtype=np.uint8)
    labels[dist < r_outer] = 1
    labels[dist < r_inner] = 2
    if with_small_label:
        offset = r_outer + rng.uniform(2.0, 4.0)
        blob_c = center + np.array([0.0, offset * 0.7, offset * 0.7], dtype=np.float32)
        blob = np.sqrt(
            ((z - blob_c[0]) * 0.5) ** 2 + (y - blob_c[1]) ** 2 + (x - blob_c[2]) ** 2
        ) < rng.uniform(2.5, 3.5)
        labels[blob & (labels == 0)] = 3
    means = np.array([0.0, 1.0, 2.0, 3.0], dtype=np.float32)
    image = means[labels] + rng.normal(0.0, noise, size=shape).astype(np.float32)
    return image.astype(np.float32), labels


def make_short_axis_case(
    rng: np.random.Generator,
    *,
    shape: tuple[int, int, int] = (16, 48, 48),
    with_small_label: bool = True,
    noise: float = 0.35,
    shift: float = 2.5,
    dropout: float = 0.25,
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Make one cardiac short-axis-like stack (z, y, x): what 2D and 3D models differ on.

    Each slice holds a cavity (label 2, "LV") in a muscle ring (label 1, "myocardium") that
    narrows towards the apex and, on a shorter range of slices, a thin crescent beside the ring
    (label 3, "RV", 2 to 3 voxels thick in-plane; absent when ``with_small_label`` is false),
    brighter than the cavity. Two artefacts of real stacks give each kind of model its edge:

    * every slice is shifted in-plane at random (``shift``: standard deviation in voxels; breath
      holds differ between slices), so the thin crescent does not line up from slice to slice
      and context across slices does not help there, while the large ring and cavity overlap;
    * a fraction ``dropout`` of the slices is lost (noise only, an artefact): a 2D model sees
      nothing there, a 3D model infers the large structures from the slices around.

    Args:
        rng: Random generator (geometry, shifts, artefacts, noise).
        shape: Array shape (z, y, x); z is the thick-slice axis.
        with_small_label: Whether the crescent (label 3) is present.
        noise: Standard deviation of the Gaussian intensity noise.
        shift: Standard deviation of each slice's in-plane shift, in voxels.
        dropout: Probability that a slice is lost.

    Returns:
        ``(image, labels)``: float32 intensities and uint8 labels 0..3.

    Examples:
        >>> image, labels = make_short_axis_case(np.random.default_rng(0))
        >>> image.shape, sorted(np.unique(labels).tolist())
        ((16, 48, 48), [0, 1, 2, 3])
        >>> bool((labels == 3).sum() < (labels == 2).sum())  # the crescent is the small label
        True
    """
    nz, ny, nx = shape
    yy, xx = np.meshgrid(
        np.arange(ny, dtype=np.float32), np.arange(nx, dtype=np.float32), indexing="ij"
    )
    cy, cx = ny / 2 + rng.uniform(-3, 3), nx / 2 + rng.uniform(-3, 3)
    r_cavity, wall = rng.uniform(0.15, 0.21) * ny, rng.uniform(3.0, 4.5)
    base, apex = int(rng.integers(1, 3)), nz - int(rng.integers(1, 3))
    rv_angle, rv_thickness = rng.uniform(0, 2 * np.pi), rng.uniform(2.2, 3.2)
    rv_first, rv_last = base + int(rng.integers(0, 3)), apex - int(rng.integers(2, 5))
    labels = np.zeros(shape, dtype=np.uint8)
    for z in range(base, apex):
        t = (z - base) / max(apex - base - 1, 1)  # 0 at the base, 1 at the apex
        radius = r_cavity * np.sqrt(max(1.0 - 0.75 * t**2, 0.05))
        dy, dx = rng.normal(0.0, shift, size=2)
        dist = np.sqrt((yy - cy - dy) ** 2 + (xx - cx - dx) ** 2)
        labels[z][dist < radius + wall] = 1
        labels[z][dist < radius] = 2
        if with_small_label and rv_first <= z < rv_last:
            angle = np.arctan2(yy - cy - dy, xx - cx - dx)
            off = np.angle(np.exp(1j * (angle - rv_angle - rng.normal(0.0, 0.15))))
            inner = radius + wall + rng.uniform(0.5, 1.5)
            crescent = (dist >= inner) & (dist < inner + rv_thickness) & (np.abs(off) < 1.1)
            labels[z][crescent & (labels[z] == 0)] = 3
    means = np.array([0.0, 1.0, 2.0, 2.6], dtype=np.float32)
    image = means[labels] + rng.normal(0.0, noise, size=shape).astype(np.float32)
    for lost in np.flatnonzero(rng.random(nz) < dropout):
        image[lost] = 0.5 + rng.normal(0.0, 2 * noise, size=shape[1:])
    return image.astype(np.float32), labels


def _write_image(array: NDArray[Any], path: Path, spacing: Sequence[float]) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in spacing])
    sitk.WriteImage(image, str(path), True)


def write_labels_image(
    labels: NDArray[Any], path: str | os.PathLike[str], spacing: Sequence[float]
) -> Path:
    """Write a uint8 label map with ``spacing`` (SimpleITK order), e.g. ``CASE.nii.gz``."""
    _write_image(np.asarray(labels, dtype=np.uint8), Path(path), spacing)
    return Path(path)


def write_dataset_json(
    folder: str | os.PathLike[str],
    labels: Mapping[str, Any],
    num_training: int,
    *,
    file_ending: str = ".nii.gz",
    channel: str = "MRI",
    **extra: Any,
) -> Path:
    """Write ``folder/dataset.json`` with one channel, ``labels`` and any ``extra`` keys.

    Examples:
        >>> import tempfile
        >>> path = write_dataset_json(tempfile.mkdtemp(), DEFAULT_LABELS, 4)
        >>> json.loads(path.read_text())["labels"]["LV"], path.name
        (2, 'dataset.json')
    """
    data = {
        "channel_names": {"0": channel},
        "labels": dict(labels),
        "numTraining": num_training,
        "file_ending": file_ending,
        **extra,
    }
    path = Path(folder) / "dataset.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def nnunet_environment(
    raw: str | os.PathLike[str],
    preprocessed: str | os.PathLike[str],
    results: str | os.PathLike[str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment for running ``nnUNetv2_*`` commands on one workspace, one process each.

    ``os.environ`` without its ``nnUNet_*`` variables (except ``nnUNet_extTrainer``, the trainer
    folders a user set), plus ``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results`` (when
    given), ``nnUNet_n_proc_DA=1`` and ``nnUNet_def_n_proc=1``, then ``extra``.

    Examples:
        >>> env = nnunet_environment("raw", "pre", MPLBACKEND="Agg")
        >>> env["nnUNet_raw"], env["nnUNet_def_n_proc"], env["MPLBACKEND"], "nnUNet_results" in env
        ('raw', '1', 'Agg', False)
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("nnUNet_") or k == "nnUNet_extTrainer"
    }
    env.update(nnUNet_raw=os.fspath(raw), nnUNet_preprocessed=os.fspath(preprocessed))
    if results is not None:
        env["nnUNet_results"] = os.fspath(results)
    env.update(nnUNet_n_proc_DA="1", nnUNet_def_n_proc="1")
    env.update(extra)
    return env


def make_raw_dataset(
    raw_dir: str | os.PathLike[str],
    *,
    dataset_id: int = 501,
    name: str = "SyntheticHeart",
    num_training: int = 6,
    num_test: int = 2,
    shape: tuple[int, int, int] = (16, 48, 48),
    spacing: tuple[float, float, float] = (1.0, 1.0, 2.5),
    small_label_missing_every: int = 4,
    seed: int = 0,
    num_holdout: int = 0,
    anatomy: str = "blobs",
) -> Path:
    """Write a synthetic nnU-Net raw dataset and return its folder.

    Args:
        raw_dir: The ``nnUNet_raw`` folder; ``Dataset{id:03d}_{name}`` is created in it.
        dataset_id: nnU-Net dataset ID.
        name: Dataset name.
        num_training: Cases in ``imagesTr``/``labelsTr``.
        num_test: Cases in ``imagesTs`` with references in ``labelsTs``.
        shape: Array shape (z, y, x) of every case.
        spacing: Voxel spacing in SimpleITK order (x, y, z); z is thick.
        small_label_missing_every: Label 3 is absent in every n-th case (0: never).
        seed: Seed of the random generator.
        num_holdout: Labeled cases in ``imagesVal``/``labelsVal`` (made after the test cases,
            so that adding them changes no other case): a hold-out set that no fold trains
            on, for ``tune --holdout``. nnU-Net does not read these folders.
        anatomy: ``"blobs"``: nested blobs (:func:`make_case`); ``"short_axis"``: a cardiac
            short-axis-like stack (:func:`make_short_axis_case`), the demo's.

    Returns:
        The dataset folder.
    """
    makers = {"blobs": make_case, "short_axis": make_short_axis_case}
    if anatomy not in makers:
        raise ValueError(f"anatomy must be one of {', '.join(makers)}; got {anatomy!r}.")
    rng = np.random.default_rng(seed)
    folder = Path(raw_dir) / f"Dataset{dataset_id:03d}_{name}"
    splits = (("Tr", num_training), ("Ts", num_test), ("Val", num_holdout))
    for split, count in splits:
        if count or split != "Val":
            (folder / f"images{split}").mkdir(parents=True, exist_ok=True)
            (folder / f"labels{split}").mkdir(parents=True, exist_ok=True)
    index = 0
    for split, count in splits:
        for _ in range(count):
            case = f"heart_{index:03d}"
            missing = (
                small_label_missing_every > 0
                and index % small_label_missing_every == small_label_missing_every - 1
            )
            image, labels = makers[anatomy](rng, shape=shape, with_small_label=not missing)
            _write_image(image, folder / f"images{split}" / f"{case}_0000.nii.gz", spacing)
            _write_image(labels, folder / f"labels{split}" / f"{case}.nii.gz", spacing)
            index += 1
    write_dataset_json(
        folder,
        DEFAULT_LABELS,
        num_training,
        name=name,
        description="Synthetic cardiac-like dataset made by nnunet_ext.synthetic",
    )
    return folder


def sitk_properties(
    shape: tuple[int, ...],
    spacing: Sequence[float] = (1.0, 1.0, 2.5),
    origin: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Properties like nnU-Net's ``CASE.pkl`` for a SimpleITKIO image of ``shape`` (z, y, x)."""
    spacing = tuple(float(s) for s in spacing)
    origin = tuple(float(o) for o in (origin or (0.0,) * len(spacing)))
    direction = tuple(float(v) for v in np.eye(len(spacing)).ravel())
    return {
        "sitk_stuff": {"spacing": spacing, "origin": origin, "direction": direction},
        "spacing": list(spacing[::-1]),
        "shape_before_cropping": tuple(shape),
        "bbox_used_for_cropping": [[0, s] for s in shape],
        "shape_after_cropping_and_before_resampling": tuple(shape),
    }


def minimal_plans(dataset_name: str = "Dataset501_SyntheticHeart") -> dict[str, Any]:
    """A small ``plans.json`` that nnU-Net's ensembling, postprocessing, label managers accept."""
    return {
        "dataset_name": dataset_name,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [2.5, 1.0, 1.0],
        "original_median_shape_after_transp": [16, 48, 48],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {},
        "experiment_planner_used": "nnunet_ext.synthetic",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {},
    }


def write_prediction_folder(
    folder: str | os.PathLike[str],
    probabilities: Mapping[str, NDArray[np.floating[Any]]],
    *,
    labels: Mapping[str, int | Sequence[int]] | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 2.5),
    file_ending: str = ".nii.gz",
    write_segmentations: bool = True,
    regions_class_order: Sequence[int] | None = None,
) -> Path:
    """Write an nnU-Net-style prediction folder from probability arrays.

    Args:
        folder: Output folder (created).
        probabilities: Case ID to float array ``(C, z, y, x)``.
        labels: ``dataset.json`` labels; default :data:`DEFAULT_LABELS` cut to ``C`` classes.
        spacing: Spacing in SimpleITK order for every case.
        file_ending: Label file ending.
        write_segmentations: Also write the argmax label files, as nnU-Net does.
        regions_class_order: For region (sigmoid) predictions, as in ``dataset.json``.

    Returns:
        The folder.
    """
    import SimpleITK as sitk  # noqa: N813

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(probabilities.values()))
    if labels is None:
        labels = {k: v for k, v in DEFAULT_LABELS.items() if v < first.shape[0]}
    extra: dict[str, Any] = {}
    if regions_class_order is not None:
        extra["regions_class_order"] = list(regions_class_order)
    write_dataset_json(
        out,
        {k: (list(v) if not isinstance(v, int) else v) for k, v in labels.items()},
        len(probabilities),
        file_ending=file_ending,
        **extra,
    )
    (out / "plans.json").write_text(json.dumps(minimal_plans(), indent=2))
    for case, probs in probabilities.items():
        probs32 = np.asarray(probs, dtype=np.float32)
        np.savez_compressed(out / f"{case}.npz", probabilities=probs32)
        props = sitk_properties(probs32.shape[1:], spacing)
        with open(out / f"{case}.pkl", "wb") as f:
            pickle.dump(props, f)
        if write_segmentations:
            if regions_class_order is None:
                seg = np.argmax(probs32, axis=0).astype(np.uint8)
            else:
                seg = np.zeros(probs32.shape[1:], dtype=np.uint8)
                for i, value in enumerate(regions_class_order):
                    seg[probs32[i] > 0.5] = value
            image = sitk.GetImageFromArray(seg)
            image.SetSpacing([float(s) for s in spacing])
            sitk.WriteImage(image, str(out / f"{case}{file_ending}"), True)
    return out


def model_probabilities(
    rng: np.random.Generator,
    reference: NDArray[Any],
    *,
    num_classes: int,
    good_labels: Sequence[int],
    noise: float = 1.0,
) -> NDArray[np.float32]:
    """Softmax probabilities of a model that is sharp on ``good_labels`` and biased elsewhere.

    Far from every structure the background is confident, as with real nnU-Net outputs; on the
    labels not in ``good_labels`` the model mostly predicts background. Used to make CV folders
    for ``nnunet-ext tune`` (:func:`make_cv_folders`).

    Args:
        rng: Random generator.
        reference: Reference labels ``(z, y, x)``.
        num_classes: Classes ``C`` (background included).
        good_labels: Labels the model segments well.
        noise: Standard deviation of the logit noise near the structures.

    Returns:
        ``(C, z, y, x)`` float32 probabilities.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> _, ref = make_case(rng, shape=(4, 24, 24))
        >>> p = model_probabilities(rng, ref, num_classes=4, good_labels=(1,))
        >>> p.shape, bool(np.allclose(p.sum(axis=0), 1, atol=1e-5))
        ((4, 4, 24, 24), True)
    """
    from scipy import ndimage

    near = ndimage.maximum_filter(reference > 0, size=7)
    logits = np.zeros((num_classes, *reference.shape), dtype=np.float32)
    for c in range(num_classes):
        logits[c] += 3.0 * (reference == c)
        if c > 0 and c not in good_labels:
            # misses much of the labels it is bad at (predicts background there)
            logits[0] += 3.6 * (reference == c)
    logits += noise * rng.standard_normal(logits.shape, dtype=np.float32) * near
    logits[0] += 8.0 * ~near
    logits -= logits.max(axis=0, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=0, keepdims=True)
    return logits


def make_cv_folders(
    root: str | Path,
    *,
    good_labels: Sequence[Sequence[int]] = ((1,), (2,)),
    num_cases: int = 6,
    shape: tuple[int, int, int] = (12, 40, 40),
    seed: int = 0,
) -> tuple[list[Path], Path]:
    """Write one CV probability folder per model and a reference folder under ``root``.

    Args:
        root: Parent folder (created).
        good_labels: For each model, the labels it segments well.
        num_cases: Cases per folder; label 3 is absent from every fourth.
        shape: Case shape (z, y, x).
        seed: Random seed.

    Returns:
        ``(model_dirs, reference_dir)``.
    """
    import SimpleITK as sitk  # noqa: N813

    rng = np.random.default_rng(seed)
    out = Path(root)
    ref_dir = out / "gt_segmentations"
    ref_dir.mkdir(parents=True, exist_ok=True)
    references = {}
    for i in range(num_cases):
        _, labels = make_case(rng, shape=shape, with_small_label=i % 4 != 3)
        case = f"case_{i:03d}"
        references[case] = labels
        image = sitk.GetImageFromArray(labels)
        image.SetSpacing((1.0, 1.0, 2.5))  # type: ignore[no-untyped-call,unused-ignore]
        sitk.WriteImage(image, str(ref_dir / f"{case}.nii.gz"), True)
    write_dataset_json(out, DEFAULT_LABELS, num_cases)
    model_dirs = []
    for m, good in enumerate(good_labels):
        probabilities = {
            case: model_probabilities(rng, labels, num_classes=4, good_labels=good)
            for case, labels in references.items()
        }
        folder = out / f"model_{m}" / "validation"
        write_prediction_folder(folder, probabilities, spacing=(1.0, 1.0, 2.5))
        model_dirs.append(folder)
    return model_dirs, ref_dir
