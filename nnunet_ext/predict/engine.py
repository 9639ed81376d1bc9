"""Weighted multi-model prediction in one pass (imports torch and ``nnunetv2.inference``).

For each case: every distinct preprocessing (plans, configuration, dataset.json) runs once;
each model member predicts with its own ``nnUNetPredictor`` (folds averaged by nnU-Net), its
logits go through nnU-Net's ``convert_predicted_logits_to_segmentation_with_correct_shape`` (the
export step of ``nnUNetv2_predict --save_probabilities``) and the probabilities are added into one
float32 :class:`~nnunet_ext.ensemble.fusion.FusionAccumulator`. Labels come from
:func:`~nnunet_ext.ensemble.fusion.probabilities_to_labels` and nnU-Net's writer. No member's
probabilities ever reach the disk.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from nnunet_ext.ensemble.fusion import FusionAccumulator, probabilities_to_labels
from nnunet_ext.io import list_case_files
from nnunet_ext.io.probabilities import read_probabilities
from nnunet_ext.predict.plan import ModelMember, PredictPlan, ProbabilityMember
from nnunet_ext.trainers.checkpoints import initialize_predictor

__all__ = ["CaseResult", "EnsemblePredictor", "resolve_device"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """nnU-Net prints progress to stdout; keep stdout for our results."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def resolve_device(name: str | None) -> torch.device:
    """``cpu``, ``cuda`` or ``mps``; ``None`` picks cuda when available, else cpu.

    Raises:
        ValueError: If the requested device is not available.
    """
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' must be available; got no CUDA device. Use 'cpu'.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' must be available; got no MPS device. Use 'cpu'.")
    return torch.device(name)


@dataclass
class CaseResult:
    """One predicted case.

    Attributes:
        labels: Label map in the reader's axis order (uint8, uint16 above 255 labels).
        probabilities: Fused probabilities ``(C, ...)`` float32, original geometry.
        properties: nnU-Net's properties of the first model member (geometry for the writer).
        member_labels: Each member's own argmax map, when asked for (``--qc``); else empty.
    """

    labels: NDArray[Any]
    probabilities: NDArray[np.float32]
    properties: dict[str, Any]
    member_labels: tuple[NDArray[Any], ...] = ()


def _preprocessing_key(member: ModelMember) -> str:
    text = json.dumps(
        [member.plans, member.configuration, member.dataset_json], sort_keys=True, default=str
    )
    return hashlib.sha1(text.encode()).hexdigest()


class EnsemblePredictor:
    """The loaded networks of a plan; predicts cases one at a time.

    Args:
        plan: A validated plan (:func:`nnunet_ext.predict.plan.plan_prediction`).

    Raises:
        ValueError: If the device is unavailable or ``--mirror-axes`` is not allowed by a model.
    """

    def __init__(self, plan: PredictPlan) -> None:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        self.plan = plan
        self.device = resolve_device(plan.settings["device"])
        if self.device.type == "cpu":
            # exactly what nnUNetv2_predict does for -device cpu
            torch.set_num_threads(multiprocessing.cpu_count())
        self.predictors: list[Any] = []
        self.keys: list[str | None] = []
        self.mirror_axes: list[list[int] | None] = []
        requested = iter(plan.settings["mirror_axes"])
        for member in plan.members:
            if not isinstance(member, ModelMember):
                self.predictors.append(None)
                self.keys.append(None)
                self.mirror_axes.append(None)
                continue
            with _quiet():
                predictor = nnUNetPredictor(
                    tile_step_size=plan.settings["step_size"],
                    use_gaussian=True,
                    use_mirroring=not plan.settings["disable_tta"],
                    perform_everything_on_device=self.device.type == "cuda",
                    device=self.device,
                    verbose=False,
                    verbose_preprocessing=False,
                    allow_tqdm=False,
                )
                initialize_predictor(
                    predictor,
                    member.model_dir,
                    member.folds,
                    member.checkpoint,
                    allow_unsafe=plan.allow_unsafe_checkpoints,
                )
            wanted = next(requested)  # a subset of the allowed axes (checked by the plan)
            if wanted is not None:
                predictor.allowed_mirroring_axes = tuple(wanted) if wanted else None
            used = predictor.allowed_mirroring_axes if predictor.use_mirroring else None
            self.mirror_axes.append(list(used) if used else [])
            self.predictors.append(predictor)
            self.keys.append(_preprocessing_key(member))
        first = next(p for p in self.predictors if p is not None)
        self.plans_manager = first.plans_manager
        self.label_manager = first.label_manager
        self.regions_class_order = (
            list(self.label_manager.regions_class_order) if self.label_manager.has_regions else None
        )
        # drop a preprocessed input after its last use within a case
        self._last_use = {key: index for index, key in enumerate(self.keys) if key is not None}

    def _preprocess(
        self, index: int, images: Sequence[Path] | NDArray[Any], properties: dict[str, Any] | None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        predictor = self.predictors[index]
        cm = predictor.configuration_manager
        preprocessor = cm.preprocessor_class(verbose=False)
        with _quiet():
            if isinstance(images, np.ndarray):
                data, _, props = preprocessor.run_case_npy(
                    images,
                    None,
                    copy.deepcopy(properties),
                    predictor.plans_manager,
                    cm,
                    predictor.dataset_json,
                )
            else:
                data, _, props = preprocessor.run_case(
                    [str(f) for f in images],
                    None,
                    predictor.plans_manager,
                    cm,
                    predictor.dataset_json,
                )
        tensor = torch.from_numpy(data).to(
            dtype=torch.float32, memory_format=torch.contiguous_format
        )
        return tensor, props

    def _member_probabilities(
        self, index: int, data: torch.Tensor, props: dict[str, Any]
    ) -> NDArray[Any]:
        from nnunetv2.inference.export_prediction import (
            convert_predicted_logits_to_segmentation_with_correct_shape,
        )

        predictor = self.predictors[index]
        with _quiet():
            logits = predictor.predict_logits_from_preprocessed_data(data).cpu().detach().numpy()
            _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
                logits,
                predictor.plans_manager,
                predictor.configuration_manager,
                predictor.label_manager,
                props,
                return_probabilities=True,
            )
        del logits
        return np.asarray(probabilities)

    def predict(
        self,
        images: Sequence[Path] | NDArray[Any],
        *,
        properties: dict[str, Any] | None = None,
        case_id: str | None = None,
        every_member: bool = False,
    ) -> CaseResult:
        """Predict one case from its channel files (or a ``(C, ...)`` array plus properties).

        With ``every_member``, the result also holds each member's argmax map (for the QC).

        Returns:
            Labels, fused probabilities and the properties for the writer.
        """
        cache: dict[str, tuple[torch.Tensor, dict[str, Any]]] = {}
        accumulator: FusionAccumulator | None = None
        first_props: dict[str, Any] | None = None
        members = self.plan.members
        # model members first determine the shape; probability members are added in spec order
        for index, member in enumerate(members):
            if isinstance(member, ProbabilityMember):
                if case_id is None:
                    raise ValueError("probability-folder members need a case id (file input).")

                files, _ = list_case_files(member.path, ".npz")
                probabilities = read_probabilities(files[case_id])
            else:
                key = self.keys[index]
                assert key is not None
                if key not in cache:
                    cache[key] = self._preprocess(index, images, properties)
                data, props = cache[key]
                if first_props is None:
                    first_props = props
                probabilities = self._member_probabilities(index, data, props)
                if self._last_use[key] == index:
                    del cache[key]
                    del data
            if accumulator is None:
                accumulator = FusionAccumulator(
                    probabilities.shape,
                    weights=self.plan.fusion_weights,
                    num_members=len(members),
                    argmax_members=range(len(members)) if every_member else self.plan.rules.members,
                )
            if tuple(probabilities.shape) != accumulator.shape:
                raise ValueError(
                    f"member {index} ({getattr(member, 'model_dir', getattr(member, 'path', ''))}) "
                    f"gives probabilities of shape {probabilities.shape} for case {case_id}; "
                    f"the first member gives {accumulator.shape}. Members must predict the same "
                    "image geometry."
                )
            accumulator.add_array(index, probabilities)
            del probabilities
        assert accumulator is not None
        assert first_props is not None
        fused = accumulator.result()
        member_labels = accumulator.member_labels()
        labels = probabilities_to_labels(
            fused,
            regions_class_order=self.regions_class_order,
            rules=self.plan.rules,
            member_labels=member_labels,
        )
        kept = tuple(member_labels[m] for m in range(len(members))) if every_member else ()
        return CaseResult(labels, fused, first_props, kept)

    def writer(self) -> Any:
        """nnU-Net's image writer of the first model's plans."""
        return self.plans_manager.image_reader_writer_class()
