"""A plan applied in the pass (predict/ensemble --plan): one label write, no read back, the bytes
of ``postprocess apply`` on the plain output, for nnU-Net's NIfTI writers on random geometry."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.io import read_labels, reader_writer
from nnunet_ext.postprocess import PostprocessingPlan
from nnunet_ext.postprocess import in_pass as in_pass_module
from nnunet_ext.postprocess.folders import postprocess_file
from nnunet_ext.postprocess.in_pass import probe_array, same_order, write_through_plan
from nnunet_ext.postprocess.steps import ComponentStep

PLANS = (
    PostprocessingPlan(keep_largest=(1, 3), fill_holes=(2,), min_voxels={2: 3}),
    PostprocessingPlan(keep_largest_foreground=True, min_volume_mm3={3: 4.0}, connectivity=1),
    PostprocessingPlan(
        steps=(
            ComponentStep("relabel_small", 3, to=1, min_size=4, connectivity=3),
            ComponentStep("keep_top_k", 1, k=2, connectivity=2),
            ComponentStep("volume_gate", 2, min_size=20.0, unit="mm3"),
        ),
        fill_holes=(1,),
    ),
)
PROBABILITY_PLAN = PostprocessingPlan(
    steps=(ComponentStep("min_probability", 2, threshold=0.5, statistic="mean", connectivity=3),),
    keep_largest=(1,),
)


def _affine(rng: np.random.Generator) -> np.ndarray:
    """A random voxel-to-world affine: oblique, anisotropic, with a random axis order."""
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if rng.random() < 0.5:  # near an axis order, as scanners write it
        rotation = np.eye(3)[rng.permutation(3)] * rng.choice([-1.0, 1.0], size=3)
    affine = np.eye(4)
    affine[:3, :3] = rotation * rng.uniform(0.4, 3.0, size=3)
    affine[:3, 3] = rng.uniform(-100.0, 100.0, size=3)
    return affine


def _case(tmp: Path, rw_name: str, seed: int) -> tuple[object, dict, np.ndarray, np.ndarray]:
    """A writer, the properties its reader gives a random image, labels and probabilities."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(5, 12, size=3))
    image = tmp / f"image_{seed}.nii.gz"
    nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32), _affine(rng)), str(image))
    writer = reader_writer(rw_name)
    data, properties = writer.read_images([str(image)])
    labels = rng.integers(0, 4, size=data.shape[1:]).astype(np.uint8)
    probabilities = rng.dirichlet(np.ones(4), size=labels.shape).astype(np.float32)
    return writer, properties, labels, np.moveaxis(probabilities, -1, 0)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(["SimpleITKIO", "NibabelIO", "NibabelIOWithReorient"]),
    st.integers(0, 2**32 - 1),
    st.sampled_from(range(len(PLANS) + 1)),
)
def test_in_the_pass_equals_postprocess_apply_on_the_plain_output(
    tmp_path_factory, rw_name, seed, which
):
    tmp = tmp_path_factory.mktemp("pass")
    writer, properties, labels, probabilities = _case(tmp, rw_name, seed)
    plan = PROBABILITY_PLAN if which == len(PLANS) else PLANS[which]
    if plan.needs_probabilities and rw_name == "NibabelIOWithReorient":
        plan = PLANS[0]  # refused where the writer reorients (the test below)
    plain, applied, passed = tmp / "plain.nii.gz", tmp / "applied.nii.gz", tmp / "pass.nii.gz"
    writer.write_seg(labels, str(plain), properties)
    fused = None
    if plan.needs_probabilities:  # postprocess apply --probabilities, in the file's order
        index = np.arange(labels.size).reshape(labels.shape)  # where each voxel lands
        writer.write_seg(index, str(tmp / "index.nii.gz"), properties)
        landed = read_labels(tmp / "index.nii.gz").array
        fused = probabilities.reshape(4, -1)[:, landed.ravel()].reshape(4, *landed.shape)
    changed = postprocess_file(plain, applied, plan, probabilities=fused)
    counted = write_through_plan(
        lambda array, path: writer.write_seg(array, str(path), properties),
        labels,
        passed,
        plan,
        probabilities=probabilities if plan.needs_probabilities else None,
    )
    assert passed.read_bytes() == applied.read_bytes()
    assert counted == changed


class _CountingWriter:
    """nnU-Net's SimpleITKIO, recording the shape of every array it writes."""

    def __init__(self) -> None:
        self.writer = reader_writer("SimpleITKIO")
        self.shapes: list[tuple[int, ...]] = []

    def write_seg(self, seg: np.ndarray, path: str, properties: dict) -> None:
        self.shapes.append(seg.shape)
        self.writer.write_seg(seg, path, properties)


def test_the_labels_are_written_once_and_never_read_back(tmp_path, monkeypatch):
    """Only the 24-voxel probe goes through nnU-Net's writer and is read; the case's labels are
    written once, to the destination, and nothing else appears in its folder."""
    counting = _CountingWriter()
    _, properties, labels, _ = _case(tmp_path, "SimpleITKIO", 7)
    reads: list[tuple[int, ...]] = []
    real_read = in_pass_module.read_labels

    def read(path):
        image = real_read(path)
        reads.append(image.array.shape)
        return image

    monkeypatch.setattr(in_pass_module, "read_labels", read)
    out = tmp_path / "out"
    out.mkdir()
    write_through_plan(
        lambda array, path: counting.write_seg(array, str(path), properties),
        labels,
        out / "case.nii.gz",
        PLANS[0],
    )
    assert counting.shapes == [probe_array(labels.shape).shape]
    assert len(reads) == 1
    assert int(np.prod(reads[0])) == 24 < labels.size
    assert sorted(p.name for p in out.iterdir()) == ["case.nii.gz"]


def test_a_reorienting_writer_goes_through_a_private_plain_file(tmp_path):
    """NibabelIOWithReorient on an image not stored in RAS order: the probe comes back in
    another order (its header would need the labels' shape), so the plain labels are written
    once more, in a private temporary folder; the output folder holds the label file alone."""
    writer, properties, labels, _ = _case(tmp_path, "NibabelIOWithReorient", 3)
    written: list[tuple[int, ...]] = []

    def write(array, path):
        written.append(array.shape)
        writer.write_seg(array, str(path), properties)

    out = tmp_path / "out"
    out.mkdir()
    write_through_plan(write, labels, out / "case.nii.gz", PLANS[0])
    assert written == [probe_array(labels.shape).shape, labels.shape]
    assert sorted(p.name for p in out.iterdir()) == ["case.nii.gz"]
    probe = probe_array(labels.shape)
    assert not same_order(probe, np.flip(probe, axis=0))
    # min_probability cannot line the fused probabilities up with a reoriented file
    with pytest.raises(ValueError, match=r"step 'min_probability.*reorients the labels"):
        write_through_plan(
            write, labels, out / "other.nii.gz", PROBABILITY_PLAN, probabilities=np.ones((4, 1))
        )
    assert sorted(p.name for p in out.iterdir()) == ["case.nii.gz"]
