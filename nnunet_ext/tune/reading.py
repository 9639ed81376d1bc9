"""Read cross-validation folders once into the compact form (:mod:`nnunet_ext.tune.compact`).

Each input folder holds one model's CV probabilities (``CASE.npz``, e.g. the ``validation/``
folder of ``nnUNetv2_train --npz``, or folders merging all folds); the reference folder holds the
label files (e.g. nnU-Net's ``gt_segmentations``). Every ``.npz`` is decompressed once, in a
worker, and reduced to the compact form.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._parallel import map_cases
from nnunet_ext.evaluate.labels import find_dataset_json
from nnunet_ext.io import list_case_files, load_dataset_json, read_labels
from nnunet_ext.io.cases import PairedCases, pair_probability_files
from nnunet_ext.io.labels import MAX_UINT8_LABEL
from nnunet_ext.io.probabilities import inspect_probabilities, read_probabilities
from nnunet_ext.tune.compact import CompactCVData, compact_case, merge_cases

__all__ = ["check_tune_inputs", "check_tune_options", "common_cases", "load_cv_data"]

logger = logging.getLogger(__name__)


def _compact_job(
    job: tuple[list[str], str, int, int | None],
) -> tuple[NDArray[np.int64], NDArray[np.float16], NDArray[np.uint8]]:
    """Worker: decompress one case of every model once and reduce it (top-level for spawn)."""
    npz_files, reference_file, num_values, ignore_label = job
    reference = read_labels(reference_file).array
    probabilities = [read_probabilities(f) for f in npz_files]
    for file, member in zip(npz_files, probabilities, strict=True):
        if member.shape[1:] != reference.shape:
            raise ValueError(
                f"{file}: probabilities of spatial shape {member.shape[1:]} must match the "
                f"reference {reference_file} of shape {reference.shape}. Use CV predictions "
                "exported in the original geometry (nnUNetv2_train --npz)."
            )
    high = int(reference.max()) if reference.size else 0
    if high >= num_values:
        raise ValueError(
            f"{reference_file}: reference value {high} must be a class of the models "
            f"(< {probabilities[0].shape[0]}) or the ignore label."
        )
    return compact_case(probabilities, reference, num_values=num_values, ignore_label=ignore_label)


def _dataset_spec(json_path: Path | None) -> Any:
    """The parsed ``dataset.json`` (``None`` without one); region-based models are refused."""
    spec = load_dataset_json(json_path) if json_path is not None else None
    if (
        spec is not None
        and spec.has_regions
        and any(isinstance(v, tuple) and len(v) > 1 for v in spec.labels.values())
    ):
        raise ValueError(
            f"{json_path}: region-based (sigmoid) models must be tuned by tune_regions "
            "(nnunet-ext tune does so itself); tune_weights tunes softmax models whose classes "
            "are the labels."
        )
    return spec


def common_cases(
    paired: PairedCases, references: Mapping[str, Path], ref_root: Path, ending: str
) -> tuple[list[str], dict[str, list[str]]]:
    """Cases with probabilities in every folder and a reference; the others, with what lacks."""
    left_out: dict[str, list[str]] = {}
    for case, lacking in paired.missing.items():
        left_out[case] = [str(d) for d in lacking]
    cases = []
    for case in paired.cases:
        if case in left_out:
            continue
        if case not in references:
            left_out[case] = [str(ref_root)]
            continue
        cases.append(case)
    for case in references:
        if case not in paired.cases:
            left_out[case] = [str(d) for d in paired.input_dirs]
    if not cases:
        raise ValueError(
            f"no case has probabilities in every input folder and a reference in {ref_root} "
            f"(ending {ending!r}). Check that the folders belong together."
        )
    if left_out:
        logger.warning("%d case(s) are not in every folder and are left out", len(left_out))
    return cases, left_out


def _num_classes(paired: PairedCases, cases: Sequence[str]) -> int:
    """The class count shared by every probability file of ``cases``."""
    first = paired.cases[cases[0]]
    num_classes = inspect_probabilities(first[0]).num_classes  # type: ignore[arg-type]
    for case in cases:
        for path in paired.cases[case]:
            info = inspect_probabilities(path)  # type: ignore[arg-type]
            if info.num_classes != num_classes:
                raise ValueError(
                    f"{path}: has {info.num_classes} classes but {first[0]} has {num_classes}; "
                    "all models must predict the same labels."
                )
    return num_classes


def _label_names(
    spec: Any, json_path: Path | None, num_classes: int
) -> tuple[dict[int, str], int | None]:
    """Class index to label name, and the ignore label, from ``dataset.json`` (if any)."""
    if spec is None:
        return {}, None
    values = sorted({v for k, v in spec.labels.items() if k != "ignore" and isinstance(v, int)})
    if values != list(range(num_classes)):
        raise ValueError(
            f"{json_path}: labels {values} must be 0..{num_classes - 1}, the {num_classes} "
            "classes of the probability files."
        )
    names = {v: k for k, v in spec.labels.items() if isinstance(v, int)}
    return names, spec.ignore_label


def check_tune_inputs(
    input_dirs: Sequence[str | os.PathLike[str]], reference_dir: str | os.PathLike[str]
) -> Path:
    """The reference folder, once ``input_dirs`` lists at least 2 models and it exists.

    Raises:
        ValueError: For fewer than 2 model folders.
        NotADirectoryError: If ``reference_dir`` is not a folder.
    """
    if len(input_dirs) < 2:
        raise ValueError(
            f"input_dirs must list at least 2 model folders to tune weights; got {len(input_dirs)}."
        )
    ref_root = Path(reference_dir)
    if not ref_root.is_dir():
        raise NotADirectoryError(f"reference_dir must be an existing folder; got {ref_root}.")
    return ref_root


def check_tune_options(
    *, num_workers: int, steps: int | None, cv_folds: int, max_rounds: int | None = None
) -> None:
    """Check the tuners' numeric options (``max_rounds``: only where the tuner has it).

    Raises:
        ValueError: For an option out of range (the message names it).
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1; got {num_workers}.")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}.")
    if max_rounds is not None and max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1; got {max_rounds}.")
    if cv_folds < 0:
        raise ValueError(f"cv_folds must be >= 0; got {cv_folds}.")


def load_cv_data(
    input_dirs: Sequence[str | os.PathLike[str]],
    reference_dir: str | os.PathLike[str],
    *,
    num_workers: int = 1,
    dataset_json: str | os.PathLike[str] | None = None,
) -> tuple[CompactCVData, list[str], dict[str, list[str]], list[int], list[str]]:
    """Read CV probabilities and references once into :class:`CompactCVData`.

    Returns:
        ``(data, cases, left_out, label_ids, label_names)``.

    Raises:
        NotADirectoryError: If a folder does not exist.
        ValueError: For fewer than 2 models, no common case, region-based models, labels
            above 255 (the uint8 ceiling), or inconsistent class counts or shapes (message
            names the file).
    """
    ref_root = check_tune_inputs(input_dirs, reference_dir)
    paired = pair_probability_files(input_dirs)
    json_path = (
        Path(dataset_json) if dataset_json else find_dataset_json(Path(input_dirs[0]), ref_root)
    )
    spec = _dataset_spec(json_path)
    ending = spec.file_ending if spec is not None else ".nii.gz"
    references, _ = list_case_files(ref_root, ending)
    cases, left_out = common_cases(paired, references, ref_root, ending)
    num_classes = _num_classes(paired, cases)
    names, ignore = _label_names(spec, json_path, num_classes)
    num_values = max(num_classes, (ignore + 1) if ignore is not None else 0)
    if num_values - 1 > MAX_UINT8_LABEL:  # the compact data holds class indices as uint8
        raise ValueError(
            f"{json_path or input_dirs[0]}: labels must be <= {MAX_UINT8_LABEL} for tune (it "
            f"keeps them as uint8); got labels up to {num_values - 1}."
        )
    jobs = [
        ([str(p) for p in paired.cases[case]], str(references[case]), num_values, ignore)
        for case in cases
    ]
    compact = map_cases(_compact_job, jobs, num_workers=num_workers, desc="read CV")
    data = merge_cases(compact)
    label_ids = list(range(1, num_classes))
    return data, cases, left_out, label_ids, [names.get(i, str(i)) for i in label_ids]
