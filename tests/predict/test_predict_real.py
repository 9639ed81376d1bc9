"""`nnunet-ext predict` against the real two-step nnU-Net route, on real tiny trained models.

The session trains a 2d and a 3d_fullres CustomEpochs model with two folds each (tests/conftest.py);
the two-step route is nnUNetv2_predict --save_probabilities per model + nnUNetv2_ensemble.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from nnunet_workspace import NnunetWorkspace, check

from nnunet_ext.io import TEMP_PREFIX
from nnunet_ext.io.probabilities import read_probabilities

from ._helpers import BIN_PYTHON, CASES, nnunet_predict, ours, read_seg

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]


def labels_of(
    folder: Path, cases: tuple[str, ...] = CASES
) -> dict[str, tuple[np.ndarray, tuple[object, ...]]]:
    return {case: read_seg(folder / f"{case}.nii.gz") for case in cases}


def assert_same_labels(ours_dir: Path, reference_dir: Path, cases: tuple[str, ...] = CASES) -> None:
    mine, theirs = labels_of(ours_dir, cases), labels_of(reference_dir, cases)
    for case in cases:
        assert mine[case][0].dtype == np.uint8
        np.testing.assert_array_equal(mine[case][0], theirs[case][0], err_msg=case)
        assert mine[case][1] == theirs[case][1], case


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_equal_weights_are_voxel_identical_to_nnunet_two_step_route(
    workspace: NnunetWorkspace, two_step: dict[str, Path], equal_weights_output: Path
):
    assert_same_labels(equal_weights_output, two_step["ensemble"])
    # and to our own ensemble on the two-step route's probability folders
    ensemble = workspace.raw.parent / "our_ensemble_equal"
    check(
        workspace.run(
            "python",
            "-m",
            "nnunet_ext",
            "ensemble",
            "-i",
            str(two_step["2d"]),
            str(two_step["3d_fullres"]),
            "-o",
            str(ensemble),
        )
    )
    assert_same_labels(equal_weights_output, ensemble)
    # the labels are not trivially the same as a single member's
    singles = [labels_of(two_step[c]) for c in ("2d", "3d_fullres")]
    assert any(
        not np.array_equal(single[case][0], labels_of(equal_weights_output)[case][0])
        for single in singles
        for case in CASES
    ) or all(np.array_equal(singles[0][case][0], singles[1][case][0]) for case in CASES)
    names = sorted(p.name for p in equal_weights_output.iterdir())
    assert names == sorted(
        [f"{c}.nii.gz" for c in CASES] + ["dataset.json", "plans.json", "nnunet_ext_predict.json"]
    )  # no probability file, no temporary, no claim folder
    provenance = json.loads((equal_weights_output / "nnunet_ext_predict.json").read_text())
    assert [m["folds"] for m in provenance["members"]] == [["0", "1"], ["0", "1"]]
    assert [m["configuration"] for m in provenance["members"]] == ["2d", "3d_fullres"]
    assert provenance["settings"]["device"] == "cpu"
    assert provenance["settings"]["step_size"] == 0.5
    assert provenance["settings"]["disable_tta"] is True
    assert provenance["settings"]["mirror_axes_used"] == [[], []]


@pytest.mark.parametrize(
    "rules",
    [None, [{"label": "RV", "from": 0}, {"label": "LV", "scale": 1.5}]],
    ids=["weights", "weights-and-rules"],
)
def test_per_label_weights_match_our_ensemble_on_two_step_folders(
    workspace: NnunetWorkspace,
    two_step: dict[str, Path],
    ensemble_models: dict[str, Path],
    test_images: Path,
    tmp_path: Path,
    rules: list[dict[str, object]] | None,
):
    label_weights = [{"LV": 0.2, "RV": 3.0}, {"myocardium": 0.1, "3": 0.5}]
    with_rules = {} if rules is None else {"schema_version": 2, "rules": rules}
    predict_spec = tmp_path / "predict_spec.json"
    predict_spec.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "members": [
                    {
                        "model": str(ensemble_models["2d"]),
                        "weight": 0.3,
                        "label_weights": label_weights[0],
                    },
                    {
                        "model": str(ensemble_models["3d_fullres"]),
                        "weight": 0.7,
                        "label_weights": label_weights[1],
                        "folds": [0, 1],
                    },
                ],
                **with_rules,
            }
        )
    )
    ensemble_spec = tmp_path / "ensemble_spec.json"
    ensemble_spec.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "members": [
                    {"path": str(two_step["2d"]), "weight": 0.3, "label_weights": label_weights[0]},
                    {
                        "path": str(two_step["3d_fullres"]),
                        "weight": 0.7,
                        "label_weights": label_weights[1],
                    },
                ],
                **with_rules,
            }
        )
    )
    mine, theirs = tmp_path / "predict", tmp_path / "ensemble"
    ours(
        workspace,
        "-i",
        str(test_images),
        "-o",
        str(mine),
        "--spec",
        str(predict_spec),
        "--device",
        "cpu",
        "--save-probabilities",
        "--disable-tta",
    )
    check(
        workspace.run(
            "python",
            "-m",
            "nnunet_ext",
            "ensemble",
            "--spec",
            str(ensemble_spec),
            "-o",
            str(theirs),
            "--save-probabilities",
        )
    )
    assert_same_labels(mine, theirs)
    for case in CASES:
        fused = [read_probabilities(d / f"{case}.npz") for d in (mine, theirs)]
        np.testing.assert_array_equal(fused[0], fused[1])
    provenance = json.loads((mine / "nnunet_ext_predict.json").read_text())
    assert provenance["weights"][0] == [0.3, 0.3, 0.2, 3.0]
    assert provenance["weights"][1] == [0.7, 0.1, 0.7, 0.5]


def test_spec_mixing_a_probability_folder_and_a_model(
    workspace: NnunetWorkspace,
    two_step: dict[str, Path],
    ensemble_models: dict[str, Path],
    test_images: Path,
    tmp_path: Path,
):
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "members": [
                    {"path": str(two_step["2d"])},
                    {"model": str(ensemble_models["3d_fullres"])},
                ],
            }
        )
    )
    out = tmp_path / "out"
    ours(
        workspace,
        "-i",
        str(test_images),
        "-o",
        str(out),
        "--spec",
        str(spec),
        "--device",
        "cpu",
        "--disable-tta",
    )
    assert_same_labels(out, two_step["ensemble"])


def test_time_budget_controls_reach_nnunet_and_the_provenance(
    workspace: NnunetWorkspace,
    ensemble_models: dict[str, Path],
    test_images: Path,
    tmp_path: Path,
):
    reference = nnunet_predict(
        workspace,
        test_images,
        tmp_path / "nnunet",
        "3d_fullres",
        "--disable_tta",
        "-step_size",
        "0.75",
    )
    out = tmp_path / "out"
    ours(
        workspace,
        "-i",
        str(test_images),
        "-o",
        str(out),
        "-m",
        str(ensemble_models["3d_fullres"]),
        "--device",
        "cpu",
        "--disable-tta",
        "--step-size",
        "0.75",
    )
    assert_same_labels(out, reference)
    settings = json.loads((out / "nnunet_ext_predict.json").read_text())["settings"]
    assert settings["disable_tta"] is True
    assert settings["step_size"] == 0.75
    assert settings["mirror_axes_used"] == [[]]
    # a mirror-axes subset is recorded per member
    out2 = tmp_path / "out2"
    one = tmp_path / "one_image"
    one.mkdir()
    shutil.copyfile(test_images / "heart_006_0000.nii.gz", one / "heart_006_0000.nii.gz")
    ours(
        workspace,
        "-i",
        str(one),
        "-o",
        str(out2),
        "-m",
        str(ensemble_models["3d_fullres"]),
        "--device",
        "cpu",
        "--mirror-axes",
        "2",
        "1",
        "-f",
        "0",
    )
    settings = json.loads((out2 / "nnunet_ext_predict.json").read_text())["settings"]
    assert settings["mirror_axes_used"] == [[1, 2]]
    assert json.loads((out2 / "nnunet_ext_predict.json").read_text())["members"][0]["folds"] == [
        "0"
    ]


def test_rerun_resumes_and_never_trusts_a_half_written_file(
    workspace: NnunetWorkspace,
    ensemble_models: dict[str, Path],
    equal_weights_output: Path,
    test_images: Path,
    tmp_path: Path,
):
    out = tmp_path / "out"
    shutil.copytree(equal_weights_output, out)
    (out / "heart_007.nii.gz").unlink()
    half = out / f"{TEMP_PREFIX}0123456789ab-heart_007.nii.gz"
    half.write_bytes(b"half a file")
    untouched = (out / "heart_006.nii.gz").stat().st_mtime_ns
    result = workspace.run(
        "python",
        "-m",
        "nnunet_ext",
        "predict",
        "-i",
        str(test_images),
        "-o",
        str(out),
        "-m",
        str(ensemble_models["2d"]),
        str(ensemble_models["3d_fullres"]),
        "--device",
        "cpu",
        "--disable-tta",
    )
    check(result)
    summary = json.loads(result.stdout)
    assert (summary["written"], summary["skipped"]) == (["heart_007"], list(CASES[:3]))
    assert (out / "heart_006.nii.gz").stat().st_mtime_ns == untouched
    assert leftovers(out) == []
    assert_same_labels(out, equal_weights_output)
    # other members or settings do not resume into this folder
    other = workspace.run(
        "python",
        "-m",
        "nnunet_ext",
        "predict",
        "-i",
        str(test_images),
        "-o",
        str(out),
        "-m",
        str(ensemble_models["2d"]),
        "--device",
        "cpu",
        "--disable-tta",
    )
    assert other.returncode == 1
    assert "holds a prediction made with other members or settings" in other.stderr


# importing torch in this process: torch's own deprecation warning is not ours to fix
@pytest.mark.filterwarnings("ignore:`torch.jit.interface` is deprecated:FutureWarning")
def test_python_api_parts_and_arrays(
    ensemble_models: dict[str, Path],
    equal_weights_output: Path,
    test_images: Path,
    tmp_path: Path,
):
    import SimpleITK as sitk  # noqa: N813

    from nnunet_ext.predict import predict_arrays, predict_folder

    models = [ensemble_models["2d"], ensemble_models["3d_fullres"]]
    out = tmp_path / "parts"
    parts = [
        predict_folder(
            test_images,
            out,
            model_dirs=models,
            device="cpu",
            disable_tta=True,
            part_id=k,
            num_parts=2,
        )
        for k in range(2)
    ]
    assert [p.written for p in parts] == [CASES[0::2], CASES[1::2]]
    assert_same_labels(out, equal_weights_output)

    result = predict_arrays(
        [test_images / "heart_006_0000.nii.gz"], model_dirs=models, device="cpu", disable_tta=True
    )
    expected, _ = read_seg(equal_weights_output / "heart_006.nii.gz")
    np.testing.assert_array_equal(result.labels, expected)
    assert result.probabilities.dtype == np.float32
    assert result.probabilities.shape == (4, *expected.shape)
    image = sitk.ReadImage(str(test_images / "heart_006_0000.nii.gz"))
    array = sitk.GetArrayFromImage(image)[None].astype(np.float32)
    from_array = predict_arrays(
        array,
        model_dirs=models,
        device="cpu",
        disable_tta=True,
        properties={"spacing": image.GetSpacing()[::-1]},
    )
    np.testing.assert_array_equal(from_array.labels, expected)


def test_three_claiming_processes_one_killed_write_every_case_once(
    workspace: NnunetWorkspace,
    ensemble_models: dict[str, Path],
    equal_weights_output: Path,
    test_images: Path,
    tmp_path: Path,
):
    models = [str(ensemble_models["2d"]), str(ensemble_models["3d_fullres"])]
    out = tmp_path / "shared"
    logs = [tmp_path / f"process_{k}.log" for k in range(3)]
    processes = []
    for log in logs:
        with open(log, "w") as handle:
            processes.append(
                subprocess.Popen(
                    [
                        str(BIN_PYTHON),
                        "-m",
                        "nnunet_ext",
                        "predict",
                        "-i",
                        str(test_images),
                        "-o",
                        str(out),
                        "-m",
                        *models,
                        "--device",
                        "cpu",
                        "--disable-tta",
                        "--claim",
                        "-v",
                    ],
                    env=workspace.env(),
                    stdout=subprocess.DEVNULL,
                    stderr=handle,
                )
            )
    victim = processes[0]
    claims = out / ".nnunet_ext-claims"
    deadline = time.monotonic() + 900
    killed = False
    while time.monotonic() < deadline and victim.poll() is None:
        held = []
        if claims.is_dir():
            for claim in claims.glob("*.claim"):
                try:
                    held.append(json.loads(claim.read_text()).get("pid"))
                except (OSError, ValueError):
                    pass
        if victim.pid in held:
            os.kill(victim.pid, signal.SIGKILL)  # midway through a case
            killed = True
            break
        time.sleep(0.05)
    victim.wait()
    assert killed, "the victim never held a claim"
    for process in processes[1:]:
        assert process.wait(timeout=900) == 0
    written = []
    for log in logs:
        text = log.read_text()
        written += [
            line.split()[2] for line in text.splitlines() if line.startswith("INFO: wrote ")
        ]
    assert sorted(written) == sorted(CASES)  # every case written exactly once, by someone
    assert "retaking the expired claim" in "".join(log.read_text() for log in logs[1:])
    assert_same_labels(out, equal_weights_output)
    assert leftovers(out) == []


def test_predict_qc_matches_ensemble_qc_on_the_two_step_folders(
    workspace: NnunetWorkspace,
    two_step: dict[str, Path],
    ensemble_models: dict[str, Path],
    test_images: Path,
):
    from nnunet_ext.qc import load_qc

    out = workspace.raw.parent / "ours_qc"
    models = [str(ensemble_models["2d"]), str(ensemble_models["3d_fullres"])]
    argv = ["-i", str(test_images), "-o", str(out), "-m", *models, "--device", "cpu"]
    ours(workspace, *argv, "--disable-tta", "--qc", "--qc-maps")
    fused = workspace.raw.parent / "ensemble_qc"
    check(
        workspace.run(
            *("python", "-m", "nnunet_ext", "ensemble", "-i"),
            *(str(two_step["2d"]), str(two_step["3d_fullres"]), "-o", str(fused), "--qc"),
        )
    )
    mine, theirs = load_qc(out / "qc.json"), load_qc(fused / "qc.json")
    assert mine.members == ("2d", "3d_fullres")
    assert sorted(c.case for c in mine.cases) == sorted(CASES)
    by_case = {c.case: c for c in theirs.cases}
    for case in mine.cases:
        for label, other in zip(case.labels, by_case[case.case].labels, strict=True):
            assert label.measures.volume_ml == other.measures.volume_ml
            assert label.measures.member_dice == pytest.approx(other.measures.member_dice, abs=0.01)
            assert label.measures.soft_dice == pytest.approx(other.measures.soft_dice, abs=0.01)
    # the maps open in nnU-Net's reader with the input image's geometry
    image = sitk.ReadImage(str(test_images / f"{CASES[0]}_0000.nii.gz"))
    for name in ("disagreement", "entropy"):
        written = sitk.ReadImage(str(out / "qc" / "maps" / f"{CASES[0]}_{name}.nii.gz"))
        assert written.GetSize() == image.GetSize()
        assert written.GetSpacing() == pytest.approx(image.GetSpacing())
        assert written.GetOrigin() == pytest.approx(image.GetOrigin())
    # a rerun skips every case and writes the same report; claims and QC do not mix
    before = (out / "qc.json").read_text()
    ours(workspace, *argv, "--disable-tta", "--qc", "--qc-maps")
    assert (out / "qc.json").read_text() == before
    result = workspace.run("python", "-m", "nnunet_ext", "predict", *argv, "--qc", "--claim")
    assert result.returncode == 1
    assert "--qc must run in one local process" in result.stderr
