"""Weighted multi-model prediction in one pass (imports torch and ``nnunetv2.inference``).

For each case: every distinct preprocessing (plans, configuration, dataset.json) runs once;
each model member predicts with its own ``nnUNetPredictor`` (folds averaged by nnU-Net), its
logits go through nnU-Net's ``convert_predicted_logits_to_segmentation_with_correct_shape`` (the
export step of ``nnUNetv2_predict --save_probabilities``) and the probabilities are added into one
float32 :class:`~nnunet_ext.ensemble.fusion.FusionAccumulator`. Labels come from
:func:`~nnunet_ext.ensemble.fusion.probabilities_to_labels` and nnU-Net's writer. No member's
probabilities ever reach the disk.

A cascade member (``3d_cascade_fullres``) runs its previous stage (``3d_lowres``) first, in the
same pass: that stage's labels, made as ``nnUNetv2_predict`` makes the label file it writes,
are preprocessed together with the images and added as one-hot channels, as
``nnUNetv2_predict -prev_stage_predictions`` reads that file back (nnU-Net's readers return
float32 label maps; the values are the labels, so nothing is lost by skipping the file).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import multiprocessing
import sys
from collections.abc import Iterable, Iterator, Sequence
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

__all__ = [
    "CaseResult",
    "EnsemblePredictor",
    "Fusion",
    "FusionJob",
    "MemberLogits",
    "PreprocessingJob",
    "StageInputs",
    "finish_case",
    "fuse",
    "preprocess_arrays",
    "preprocess_case",
    "resolve_device",
]

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
    parts: list[Any] = [member.plans, member.configuration, member.dataset_json]
    if member.previous_stage is not None:  # its input holds the previous stage's labels
        parts.append(member.previous_stage.to_dict())
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class _Stage:
    """One loaded model folder: its predictor and, for a cascade stage, the previous stage."""

    predictor: Any
    previous: _Stage | None = None


def _load_stage(
    member: ModelMember,
    settings: dict[str, Any],
    device: torch.device,
    allow_unsafe: bool,
    wanted: list[int] | None,
) -> _Stage:
    """Load a member's networks (its previous stage first), with its mirror axes."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    previous = None
    if member.previous_stage is not None:
        previous = _load_stage(member.previous_stage, settings, device, allow_unsafe, wanted)
    with _quiet():
        predictor = nnUNetPredictor(
            tile_step_size=settings["step_size"],
            use_gaussian=True,
            use_mirroring=not settings["disable_tta"],
            perform_everything_on_device=device.type == "cuda",
            device=device,
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
        initialize_predictor(
            predictor, member.model_dir, member.folds, member.checkpoint, allow_unsafe=allow_unsafe
        )
    if wanted is not None:  # a subset of the allowed axes (checked by the plan)
        allowed = predictor.allowed_mirroring_axes or ()
        chosen = tuple(a for a in wanted if a in allowed)
        predictor.allowed_mirroring_axes = chosen or None
    return _Stage(predictor, previous)


@dataclass(frozen=True)
class StageInputs:
    """What preprocessing a model folder's input needs (nnU-Net's managers; picklable)."""

    plans_manager: Any
    configuration_manager: Any
    label_manager: Any
    dataset_json: dict[str, Any]


@dataclass(frozen=True)
class PreprocessingJob:
    """One distinct preprocessing of a case, run ahead in a worker (:func:`preprocess_case`)."""

    key: str
    inputs: StageInputs


@dataclass
class MemberLogits:
    """One model member's network output for a case, with what its export needs (picklable)."""

    logits: NDArray[Any]
    props: dict[str, Any]
    plans_manager: Any
    configuration_manager: Any
    label_manager: Any

    def probabilities(self) -> NDArray[Any]:
        """nnU-Net's export step: probabilities in the original geometry."""
        from nnunetv2.inference.export_prediction import (
            convert_predicted_logits_to_segmentation_with_correct_shape,
        )

        with _quiet():
            _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
                self.logits,
                self.plans_manager,
                self.configuration_manager,
                self.label_manager,
                self.props,
                return_probabilities=True,
            )
        return np.asarray(probabilities)


@dataclass(frozen=True)
class Fusion:
    """How a case's member probabilities are fused (the plan's weights and rules)."""

    weights: NDArray[np.float64]
    names: tuple[str, ...]
    argmax_members: tuple[int, ...]
    rules: Any
    regions_class_order: list[Any] | None
    every_member: bool


@dataclass
class FusionJob:
    """A case after the networks: what the export step needs (picklable)."""

    case_id: str | None
    outputs: list[MemberLogits | Path]
    fusion: Fusion


def _inputs_of(stage: _Stage) -> StageInputs:
    predictor = stage.predictor
    return StageInputs(
        predictor.plans_manager,
        predictor.configuration_manager,
        predictor.label_manager,
        predictor.dataset_json,
    )


def _tensor(data: NDArray[Any]) -> torch.Tensor:
    return torch.from_numpy(data).to(dtype=torch.float32, memory_format=torch.contiguous_format)


def preprocess_arrays(
    inputs: StageInputs,
    images: Sequence[Path] | NDArray[Any],
    properties: dict[str, Any] | None,
    previous: NDArray[np.float32] | None = None,
) -> tuple[NDArray[Any], dict[str, Any]]:
    """nnU-Net's preprocessing of one case (``run_case``/``run_case_npy``), as its predictor.

    With ``previous`` (a previous stage's labels ``(1, ...)``), the labels are preprocessed with
    the images and appended as one-hot channels, as nnU-Net's preprocessing iterators do with
    ``segs_from_prev_stage``.
    """
    cm = inputs.configuration_manager
    preprocessor = cm.preprocessor_class(verbose=False)
    with _quiet():
        if isinstance(images, np.ndarray):
            data, props = images, copy.deepcopy(properties)
        else:
            reader = inputs.plans_manager.image_reader_writer_class()
            data, props = reader.read_images([str(f) for f in images])
        data, seg, props = preprocessor.run_case_npy(
            data, previous, props, inputs.plans_manager, cm, inputs.dataset_json
        )
    if previous is not None:
        from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot

        labels = inputs.label_manager.foreground_labels
        data = np.vstack((data, convert_labelmap_to_one_hot(seg[0], labels, data.dtype)))
    return data, props


def preprocess_case(
    jobs: Sequence[PreprocessingJob], images: Sequence[Path]
) -> dict[str, tuple[NDArray[Any], dict[str, Any]]]:
    """Preprocess one case for each job (a worker process's task in the pipeline)."""
    return {job.key: preprocess_arrays(job.inputs, images, None) for job in jobs}


def fuse(outputs: Iterable[MemberLogits | Path], fusion: Fusion, case_id: str | None) -> CaseResult:
    """Fuse the members' probabilities in spec order into labels (exported one at a time)."""
    accumulator: FusionAccumulator | None = None
    first_props: dict[str, Any] | None = None
    num_members = len(fusion.names)
    for index, output in enumerate(outputs):
        if isinstance(output, MemberLogits):
            probabilities = output.probabilities()
            first_props = first_props if first_props is not None else output.props
        else:
            probabilities = read_probabilities(output)
        del output
        if accumulator is None:
            accumulator = FusionAccumulator(
                probabilities.shape,
                weights=fusion.weights,
                num_members=num_members,
                argmax_members=fusion.argmax_members,
            )
        if tuple(probabilities.shape) != accumulator.shape:
            raise ValueError(
                f"member {index} ({fusion.names[index]}) gives probabilities of shape "
                f"{probabilities.shape} for case {case_id}; the first member gives "
                f"{accumulator.shape}. Members must predict the same image geometry."
            )
        accumulator.add_array(index, probabilities)
        del probabilities
    assert accumulator is not None
    assert first_props is not None
    fused = accumulator.result()
    member_labels = accumulator.member_labels()
    labels = probabilities_to_labels(
        fused,
        regions_class_order=fusion.regions_class_order,
        rules=fusion.rules,
        member_labels=member_labels,
    )
    kept = tuple(member_labels[m] for m in range(num_members)) if fusion.every_member else ()
    return CaseResult(labels, fused, first_props, kept)


def finish_case(job: FusionJob) -> CaseResult:
    """The export step of a case (a worker process's task in the pipeline)."""
    return fuse(job.outputs, job.fusion, job.case_id)


class EnsemblePredictor:
    """The loaded networks of a plan; predicts cases one at a time.

    Args:
        plan: A validated plan (:func:`nnunet_ext.predict.plan.plan_prediction`).

    Raises:
        ValueError: If the device is unavailable or ``--mirror-axes`` is not allowed by a model.
    """

    def __init__(self, plan: PredictPlan) -> None:
        self.plan = plan
        self.device = resolve_device(plan.settings["device"])
        if self.device.type == "cpu":
            # exactly what nnUNetv2_predict does for -device cpu
            torch.set_num_threads(multiprocessing.cpu_count())
        self.stages: list[_Stage | None] = []
        self.keys: list[str | None] = []
        self.mirror_axes: list[list[int] | None] = []
        requested = iter(plan.settings["mirror_axes"])
        for member in plan.members:
            if not isinstance(member, ModelMember):
                self.stages.append(None)
                self.keys.append(None)
                self.mirror_axes.append(None)
                continue
            stage = _load_stage(
                member, plan.settings, self.device, plan.allow_unsafe_checkpoints, next(requested)
            )
            predictor = stage.predictor
            used = predictor.allowed_mirroring_axes if predictor.use_mirroring else None
            self.mirror_axes.append(list(used) if used else [])
            self.stages.append(stage)
            self.keys.append(_preprocessing_key(member))
        first = next(s for s in self.stages if s is not None).predictor
        self.plans_manager = first.plans_manager
        self.label_manager = first.label_manager
        self.regions_class_order = (
            list(self.label_manager.regions_class_order) if self.label_manager.has_regions else None
        )
        # drop a preprocessed input after its last use within a case
        self._last_use = {key: index for index, key in enumerate(self.keys) if key is not None}

    @property
    def predictors(self) -> list[Any]:
        """Each member's ``nnUNetPredictor`` (``None`` for a probability member)."""
        return [None if s is None else s.predictor for s in self.stages]

    def _preprocess(
        self,
        stage: _Stage,
        images: Sequence[Path] | NDArray[Any],
        properties: dict[str, Any] | None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        previous = None
        if stage.previous is not None:
            previous = self._previous_labels(stage.previous, images, properties)
        data, props = preprocess_arrays(_inputs_of(stage), images, properties, previous)
        return _tensor(data), props

    def _previous_labels(
        self,
        stage: _Stage,
        images: Sequence[Path] | NDArray[Any],
        properties: dict[str, Any] | None,
    ) -> NDArray[np.float32]:
        """The previous stage's label map ``(1, ...)``, as nnU-Net reads its label file back."""
        from nnunetv2.inference.export_prediction import (
            convert_predicted_logits_to_segmentation_with_correct_shape,
        )

        data, props = self._preprocess(stage, images, properties)
        predictor = stage.predictor
        with _quiet():
            logits = predictor.predict_logits_from_preprocessed_data(data).cpu().detach().numpy()
            segmentation = convert_predicted_logits_to_segmentation_with_correct_shape(
                logits,
                predictor.plans_manager,
                predictor.configuration_manager,
                predictor.label_manager,
                props,
                return_probabilities=False,
            )
        return np.asarray(segmentation)[None].astype(np.float32)

    def preprocessing_jobs(self) -> list[PreprocessingJob]:
        """What a worker process can preprocess ahead: each distinct single-stage preprocessing.

        A cascade stage's input needs its previous stage's networks: it is made in
        :meth:`run_networks`.
        """
        jobs: dict[str, PreprocessingJob] = {}
        for key, stage in zip(self.keys, self.stages, strict=True):
            if key is not None and stage is not None and stage.previous is None:
                jobs.setdefault(key, PreprocessingJob(key, _inputs_of(stage)))
        return list(jobs.values())

    def run_networks(
        self,
        images: Sequence[Path] | NDArray[Any],
        *,
        properties: dict[str, Any] | None = None,
        case_id: str | None = None,
        prepared: dict[str, tuple[NDArray[Any], dict[str, Any]]] | None = None,
        every_member: bool = False,
    ) -> FusionJob:
        """The networks' part of a case: each member's logits, for :func:`finish_case`.

        ``prepared`` holds inputs preprocessed ahead (:func:`preprocess_case`).
        """
        cache = {key: (_tensor(data), props) for key, (data, props) in (prepared or {}).items()}
        outputs = list(self._outputs(images, properties, case_id, cache))
        return FusionJob(case_id, outputs, self._fusion(every_member))

    def _outputs(
        self,
        images: Sequence[Path] | NDArray[Any],
        properties: dict[str, Any] | None,
        case_id: str | None,
        cache: dict[str, tuple[torch.Tensor, dict[str, Any]]],
    ) -> Iterator[MemberLogits | Path]:
        """Each member's output in spec order: its logits, or a probability member's file."""
        for index, member in enumerate(self.plan.members):
            if isinstance(member, ProbabilityMember):
                if case_id is None:
                    raise ValueError("probability-folder members need a case id (file input).")
                files, _ = list_case_files(member.path, ".npz")
                yield files[case_id]
                continue
            key, stage = self.keys[index], self.stages[index]
            assert key is not None
            assert stage is not None
            if key not in cache:
                cache[key] = self._preprocess(stage, images, properties)
            data, props = cache[key]
            if self._last_use[key] == index:
                del cache[key]
            predictor = stage.predictor
            with _quiet():
                logits = predictor.predict_logits_from_preprocessed_data(data).cpu().detach()
            del data
            output = MemberLogits(
                logits.numpy(),
                props,
                predictor.plans_manager,
                predictor.configuration_manager,
                predictor.label_manager,
            )
            del logits
            yield output

    def _fusion(self, every_member: bool) -> Fusion:
        members = self.plan.members
        return Fusion(
            self.plan.fusion_weights,
            tuple(str(getattr(m, "model_dir", getattr(m, "path", ""))) for m in members),
            tuple(range(len(members))) if every_member else tuple(self.plan.rules.members),
            self.plan.rules,
            self.regions_class_order,
            every_member,
        )

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
        One member's logits and probabilities at a time are held, beside the accumulator.

        Returns:
            Labels, fused probabilities and the properties for the writer.
        """
        outputs = self._outputs(images, properties, case_id, {})
        return fuse(outputs, self._fusion(every_member), case_id)

    def writer(self) -> Any:
        """nnU-Net's image writer of the first model's plans."""
        return self.plans_manager.image_reader_writer_class()
