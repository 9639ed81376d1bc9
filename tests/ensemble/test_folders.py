from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnunet_ext.ensemble import EnsembleSpec, ensemble_folders, probabilities_to_labels
from nnunet_ext.io import read_labels
from nnunet_ext.io.probabilities import read_probabilities

NNUNET_ENSEMBLE = Path(sys.executable).parent / "nnUNetv2_ensemble"


def label_files(folder: Path) -> dict[str, bytes]:
    return {p.name: read_labels(p).array.tobytes() for p in sorted(folder.glob("*.nii.gz"))}


@pytest.mark.nnunet
def test_equal_weights_voxel_identical_to_nnunetv2_ensemble(make_folders, tmp_path):
    # quantised probabilities: many exact ties, so tie-breaking must match too
    folders = make_folders(3, cases=("c0", "c1", "c2"), quantize=6)
    # ordinary probabilities in a second set
    ours = tmp_path / "ours"
    ensemble_folders(folders, ours, num_workers=2)
    ref = tmp_path / "ref"
    subprocess.run(
        [str(NNUNET_ENSEMBLE), "-i", *map(str, folders), "-o", str(ref), "-np", "1"],
        check=True,
        capture_output=True,
    )
    for case in ("c0", "c1", "c2"):
        a, b = read_labels(ours / f"{case}.nii.gz"), read_labels(ref / f"{case}.nii.gz")
        assert np.array_equal(a.array, b.array)
        assert a.geometry() == b.geometry()
        assert a.stored_dtype == "uint8"
    assert (ours / "plans.json").is_file()
    assert json.loads((ours / "dataset.json").read_text()) == json.loads(
        (ref / "dataset.json").read_text()
    )
    provenance = json.loads((ours / "nnunet_ext_ensemble.json").read_text())
    assert provenance["schema_version"] == 1
    assert provenance["complete"] is True
    assert provenance["inputs"] == [str(f.resolve()) for f in folders]


@pytest.mark.nnunet
def test_save_probabilities_matches_nnunet_save_npz(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0",))
    ensemble_folders(folders, tmp_path / "ours", save_probabilities=True)
    subprocess.run(
        [
            str(NNUNET_ENSEMBLE),
            "-i",
            *map(str, folders),
            "-o",
            str(tmp_path / "ref"),
            "-np",
            "1",
            "--save_npz",
        ],
        check=True,
        capture_output=True,
    )
    ours = read_probabilities(tmp_path / "ours" / "c0.npz")
    assert np.array_equal(ours, np.load(tmp_path / "ref" / "c0.npz")["probabilities"])
    with open(tmp_path / "ref" / "c0.pkl", "rb") as f:
        assert pickle.load(f) == pickle.loads((tmp_path / "ours" / "c0.pkl").read_bytes())
    # chained: the fused folder is a valid input again
    chained = ensemble_folders([tmp_path / "ours", folders[0]], tmp_path / "chained")
    assert chained.written == ("c0",)


def test_per_label_spec_matches_float64_weighted_mean(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0", "c1"), names=("pred_2d", "pred_3d_fullres"))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "members": [
                    {"path": "pred_2d", "weight": 0.3, "label_weights": {"3": 1.0}},
                    {
                        "path": "pred_3d_fullres",
                        "weight": 0.7,
                        "label_weights": {"RV": 0.0, "LV": 2},
                    },
                ],
            }
        )
    )
    summary = ensemble_folders(None, tmp_path / "out", spec=spec_file)
    assert summary.weights == ((0.3, 0.3, 0.3, 1.0), (0.7, 0.7, 2.0, 0.0))
    w = np.array(summary.weights)
    w = w / w.sum(axis=0)
    for case in ("c0", "c1"):
        p = [np.load(f / f"{case}.npz")["probabilities"].astype(np.float64) for f in folders]
        reference = w[0][:, None, None, None] * p[0] + w[1][:, None, None, None] * p[1]
        expected = probabilities_to_labels(reference)
        got = read_labels(tmp_path / "out" / f"{case}.nii.gz").array
        differ = got != expected
        if differ.any():  # allowed only at exact near-ties of the reference
            top2 = np.sort(reference, axis=0)[-2:]
            assert np.all((top2[1] - top2[0])[differ] < 1e-6)
    # -i with --spec: the spec's weights on other folders, same order
    same = ensemble_folders(folders, tmp_path / "out2", spec=EnsembleSpec.load(spec_file))
    assert same.weights == summary.weights
    assert label_files(tmp_path / "out") == label_files(tmp_path / "out2")


def test_hidden_junk_ignored_and_nii_gz_npz_pairs(make_folders, tmp_path, caplog):
    folders = make_folders(2, cases=("c0",))
    (folders[0] / "._c0.npz").write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")
    for suffix in (".npz", ".pkl"):
        os.replace(folders[1] / f"c0{suffix}", folders[1] / f"c0.nii.gz{suffix}")
    summary = ensemble_folders(folders, tmp_path / "out")
    assert summary.written == ("c0",)
    assert summary.ignored == (folders[0] / "._c0.npz",)
    assert "ignoring 1 hidden file" in caplog.text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "c0.nii.gz",
        "dataset.json",
        "nnunet_ext_ensemble.json",
        "plans.json",
    ]


def _truncate(folders):
    data = (folders[1] / "c1.npz").read_bytes()
    (folders[1] / "c1.npz").write_bytes(data[: len(data) - 40])
    return (
        r"c1\.npz must be a complete nnU-Net probability file \(\.npz\); got .*truncated or corrupt"
    )


def _corrupt_data(folders):
    path = folders[1] / "c1.npz"
    data = bytearray(path.read_bytes())
    data[200:260] = bytes(60)
    path.write_bytes(bytes(data))
    return (
        r"c1\.npz must be a complete nnU-Net probability file \(\.npz\); got .*truncated or corrupt"
    )


def _missing(folders):
    (folders[1] / "c1.npz").unlink()
    return r"1 case\(s\) are missing from some input folders: c1 \(missing in .*model_1\)"


def _nan(folders):
    p = np.load(folders[2] / "c1.npz")["probabilities"]
    p[1, 2, 3, 4] = np.nan
    np.savez_compressed(folders[2] / "c1.npz", probabilities=p)
    return (
        r"model_2/c1\.npz must be probabilities: finite values in \[0, 1\]; got NaN \(case 'c1'\)"
    )


def _shape(folders):
    p = np.load(folders[2] / "c1.npz")["probabilities"]
    np.savez_compressed(folders[2] / "c1.npz", probabilities=p[:, :-1])
    return (
        r"model_2/c1\.npz must be probabilities of shape \(4, 5, 12, 10\) like "
        r".*model_0/c1\.npz \(case 'c1'\); got shape \(4, 4, 12, 10\)"
    )


def _classes(folders):
    p = np.load(folders[0] / "c1.npz")["probabilities"]
    for f in folders:
        np.savez_compressed(f / "c1.npz", probabilities=p[:3])
    return r"c1\.npz must be 4 channels, as .*dataset\.json defines \(case 'c1'\); got 3 channels"


def _labels(folders):
    ds = json.loads((folders[1] / "dataset.json").read_text())
    ds["labels"]["RV"] = 5
    (folders[1] / "dataset.json").write_text(json.dumps(ds))
    return "dataset.json label definitions differ"


def _pkl_missing(folders):
    (folders[0] / "c1.pkl").unlink()
    return r"properties file not found for .*model_0/c1\.npz"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_truncate, id="truncated-npz"),
        pytest.param(_corrupt_data, id="corrupt-deflate"),
        pytest.param(_missing, id="missing-case"),
        pytest.param(_nan, id="nan"),
        pytest.param(_shape, id="shape-mismatch"),
        pytest.param(_classes, id="class-count"),
        pytest.param(_labels, id="dataset-json-labels"),
        pytest.param(_pkl_missing, id="pkl-missing"),
    ],
)
def test_bad_inputs_one_line_nonzero_no_output_for_case(make_folders, tmp_path, capsys, damage):
    from nnunet_ext.ensemble.cli import main

    folders = make_folders(3, cases=("c0", "c1"))
    match = damage(folders)
    snapshot = {p: p.read_bytes() for f in folders for p in f.iterdir()}
    out = tmp_path / "out"
    code = main(["-i", *map(str, folders), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("nnunet-ext ensemble: error: ")
    import re

    assert re.search(match, lines[0]), lines[0]
    assert not (out / "c1.nii.gz").exists()
    assert not list(out.glob(".nnunet_ext-tmp-*")) if out.exists() else True
    assert snapshot == {p: p.read_bytes() for f in folders for p in f.iterdir()}  # inputs untouched


def test_allow_missing_fuses_present_members(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0", "c1"))
    (folders[1] / "c1.npz").unlink()
    with pytest.raises(ValueError, match="pass allow_missing=True"):
        ensemble_folders(folders, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    summary = ensemble_folders(folders, tmp_path / "out", allow_missing=True)
    assert summary.written == ("c0", "c1")
    own = np.load(folders[0] / "c1.npz")["probabilities"].argmax(0)
    assert np.array_equal(read_labels(tmp_path / "out" / "c1.nii.gz").array, own)


def test_malicious_pkl_does_not_run_code(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0",))
    marker = tmp_path / "pwned"
    evil = pickle.dumps(
        type("E", (), {"__reduce__": lambda self: (os.system, (f"touch {marker}",))})()
    )
    (folders[1] / "c0.pkl").write_bytes(evil)
    with pytest.raises(ValueError, match=r"model_1/c0\.pkl: refusing to load global posix\.system"):
        ensemble_folders(folders, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out" / "c0.nii.gz").exists()


def test_resume_after_kill_matches_clean_run(make_folders, tmp_path):
    cases = tuple(f"c{i:02d}" for i in range(24))
    folders = make_folders(3, cases=cases, shape=(4, 16, 48, 48))
    clean = tmp_path / "clean"
    ensemble_folders(folders, clean)
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "nnunet_ext.ensemble",
        "-i",
        *map(str, folders),
        "-o",
        str(out),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline and not list(out.glob("c0*.nii.gz")) and process.poll() is None
    ):
        time.sleep(0.002)
    process.kill()
    process.wait()
    done_before = len(list(out.glob("*.nii.gz")))
    assert done_before < len(cases), "the run finished before it could be killed; enlarge the data"
    (out / ".nnunet_ext-tmp-0123456789ab-c23.nii.gz").write_bytes(
        b"partial"
    )  # as if killed mid-write
    # resume as a user would: the same command again (it takes over the killed run's lock)
    resumed = subprocess.run(command, capture_output=True, text=True, check=True)
    assert len(json.loads(resumed.stdout)["skipped"]) == done_before
    assert label_files(out) == label_files(clean)
    assert not list(out.glob(".nnunet_ext-tmp-*"))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in clean.iterdir())
    assert json.loads((out / "nnunet_ext_ensemble.json").read_text()) == json.loads(
        (clean / "nnunet_ext_ensemble.json").read_text()
    )


def test_overwrite_and_changed_weights(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0",))
    out = tmp_path / "out"
    ensemble_folders(folders, out)
    stamp = (out / "c0.nii.gz").stat().st_mtime_ns
    assert ensemble_folders(folders, out).skipped == ("c0",)
    assert (out / "c0.nii.gz").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match=r"other inputs or weights.*overwrite=True"):
        ensemble_folders(folders, out, weights=[1.0, 3.0])
    summary = ensemble_folders(folders, out, weights=[1.0, 3.0], overwrite=True)
    assert summary.written == ("c0",)
    shutil.rmtree(out)
    out.mkdir()
    (out / "c0.nii.gz").write_bytes(b"from another tool")
    with pytest.raises(
        FileExistsError, match=r"already holds 1 label file\(s\) not written by this"
    ):
        ensemble_folders(folders, out)
    assert ensemble_folders(folders, out, overwrite=True).written == ("c0",)
    with pytest.raises(ValueError, match="output_dir must differ from every input folder"):
        ensemble_folders(folders, folders[0])


@pytest.mark.parametrize("use_isal", [None, False], ids=["isal", "zlib"])
def test_isal_and_zlib_give_identical_outputs(make_folders, tmp_path, use_isal):
    folders = make_folders(2, cases=("c0",))
    ensemble_folders(folders, tmp_path / "a", use_isal=use_isal, weights=[1, 2])
    ensemble_folders(folders, tmp_path / "b", use_isal=True, weights=[1, 2])
    assert label_files(tmp_path / "a") == label_files(tmp_path / "b")


def test_region_based_folders(tmp_path, rng):
    from nnunet_ext.synthetic import write_prediction_folder

    labels = {"background": 0, "whole": [1, 2], "core": 2}
    folders = []
    for m in range(2):
        probs = {"c0": rng.random((2, 3, 6, 5), dtype=np.float32)}
        folders.append(
            write_prediction_folder(
                tmp_path / f"r{m}", probs, labels=labels, regions_class_order=[1, 2]
            )
        )
    summary = ensemble_folders(folders, tmp_path / "out", label_weights=[{"core": 1.0}, {"2": 0.0}])
    assert summary.weights == ((1.0, 1.0), (1.0, 0.0))
    p = [np.load(f / "c0.npz")["probabilities"] for f in folders]
    whole = (p[0][0] + p[1][0]) / 2
    expected = np.zeros(whole.shape, dtype=np.uint8)
    expected[whole > 0.5] = 1
    expected[p[0][1] > 0.5] = 2
    assert np.array_equal(read_labels(tmp_path / "out" / "c0.nii.gz").array, expected)


def test_memory_one_accumulator_plus_small_chunks(tmp_path, rng):
    import tracemalloc

    from nnunet_ext.ensemble.folders import fuse_case
    from nnunet_ext.ensemble.plan import plan_ensemble
    from nnunet_ext.synthetic import write_prediction_folder

    shape = (4, 64, 128, 128)  # 16 MiB per member in float32
    base = np.zeros(shape, dtype=np.float32)
    base[0] = 1.0
    folders = []
    for m in range(3):
        member = base.copy()
        member[:, m::7] = 0.25  # some structure, still compressible (fast to write)
        folders.append(
            write_prediction_folder(tmp_path / f"m{m}", {"c0": member}, write_segmentations=False)
        )
    plan = plan_ensemble(folders, tmp_path / "out", weights=[1.0, 2.0, 3.0])
    accumulator_bytes = base.nbytes
    tracemalloc.start()
    try:
        fused = fuse_case(plan.jobs[0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fused.shape == shape
    # nnUNetv2_ensemble holds two whole arrays (32 MiB here); we hold one plus a few MiB of chunks
    assert peak < accumulator_bytes + 6 * 2**20, peak / 2**20  # measured: +4 MiB


def test_error_in_one_case_with_threads(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0", "c1", "c2", "c3"))
    p = np.load(folders[1] / "c2.npz")["probabilities"]
    p[0, 0, 0, 0] = np.inf
    np.savez_compressed(folders[1] / "c2.npz", probabilities=p)
    with pytest.raises(ValueError, match=r"model_1/c2\.npz must be probabilities: finite values"):
        ensemble_folders(folders, tmp_path / "out", num_workers=2)
    assert not (tmp_path / "out" / "c2.nii.gz").exists()
    assert not list((tmp_path / "out").glob(".nnunet_ext-tmp-*"))


@pytest.mark.parametrize(
    ("num_classes", "refused"),
    [pytest.param(255, False, id="labels-to-254"), pytest.param(256, True, id="label-255")],
)
def test_the_label_ceiling_is_what_nnunets_writer_keeps_uint8(tmp_path, num_classes, refused):
    """nnU-Net's write_seg writes uint8 only below 255: the ensemble refuses a label of 255."""
    from nnunet_ext.synthetic import write_prediction_folder

    labels = {"background": 0, **{f"label_{i}": i for i in range(1, num_classes)}}
    probabilities = np.zeros((num_classes, 1, 2, 2), dtype=np.float32)
    probabilities[-1] = 1.0  # every voxel is the largest label
    folders = [
        write_prediction_folder(tmp_path / f"m{m}", {"c0": probabilities}, labels=labels)
        for m in range(2)
    ]
    if refused:
        with pytest.raises(ValueError, match=r"labels must be <= 254 to be written as uint8"):
            ensemble_folders(folders, tmp_path / "out")
        return
    ensemble_folders(folders, tmp_path / "out")
    written = read_labels(tmp_path / "out" / "c0.nii.gz")
    assert written.stored_dtype == "uint8"
    assert written.array.max() == num_classes - 1


def test_plan_in_the_pass_is_byte_identical_to_postprocess_apply(make_folders, tmp_path):
    """`ensemble --plan` against `ensemble` then `postprocess apply --plan --probabilities`."""
    from nnunet_ext.ensemble.cli import main as ensemble_main
    from nnunet_ext.postprocess import PostprocessingPlan, save_plan
    from nnunet_ext.postprocess.cli import main as postprocess_main
    from nnunet_ext.postprocess.steps import ComponentStep

    folders = make_folders(num_members=2, shape=(4, 6, 14, 12), cases=("a", "b", "c"))
    plan = PostprocessingPlan(
        steps=(
            ComponentStep("relabel_small", 3, to=1, min_size=3, connectivity=1),
            ComponentStep("min_probability", 2, threshold=0.55, statistic="mean", connectivity=3),
            ComponentStep("keep_top_k", 1, k=2, connectivity=2),
            ComponentStep("volume_gate", 3, min_size=10**6, unit="mm3"),
        ),
        fill_holes=(1,),
    )
    plan_file = save_plan(plan, tmp_path / "plan.json")
    inputs = ["-i", *map(str, folders)]
    assert ensemble_main([*inputs, "-o", str(tmp_path / "plain"), "--save-probabilities"]) == 0
    assert ensemble_main([*inputs, "-o", str(tmp_path / "pass"), "--plan", str(plan_file)]) == 0
    args = ["-i", str(tmp_path / "plain"), "-o", str(tmp_path / "applied")]
    args += ["--plan", str(plan_file), "--probabilities", str(tmp_path / "plain")]
    assert postprocess_main(args) == 0
    changed = 0
    for case in ("a", "b", "c"):
        name = f"{case}.nii.gz"
        plain = (tmp_path / "plain" / name).read_bytes()
        applied = (tmp_path / "applied" / name).read_bytes()
        assert (tmp_path / "pass" / name).read_bytes() == applied
        changed += plain != applied
    assert changed == 3  # the plan changed every case: the comparison covers it
    assert not list((tmp_path / "pass").glob(".nnunet_ext-tmp-*"))
    record = json.loads((tmp_path / "pass" / "nnunet_ext_ensemble.json").read_text())
    assert record["postprocessing"]["steps"][0]["step"] == "relabel_small"
    # a rerun with another plan into the same folder is refused (the labels differ)
    other = save_plan(PostprocessingPlan(fill_holes=(2,)), tmp_path / "other.json")
    assert ensemble_main([*inputs, "-o", str(tmp_path / "pass"), "--plan", str(other)]) == 1


def test_plan_labels_must_exist_in_the_predictions(make_folders, tmp_path, capsys):
    from nnunet_ext.ensemble.cli import main as ensemble_main
    from nnunet_ext.postprocess import PostprocessingPlan, save_plan

    folders = make_folders(num_members=2)
    plan_file = save_plan(PostprocessingPlan(keep_largest=(9,)), tmp_path / "plan.json")
    args = ["-i", *map(str, folders), "-o", str(tmp_path / "out"), "--plan", str(plan_file)]
    assert ensemble_main(args) == 1
    err = capsys.readouterr().err
    assert "plan.json: keep_largest must be labels of the predictions" in err
    assert not (tmp_path / "out").exists()
