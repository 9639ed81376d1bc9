from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from nnunet_ext.postprocess import PostprocessingPlan, postprocess_folder
from nnunet_ext.postprocess.cli import main
from tests.postprocess._reference import ref_fill_holes, ref_keep_largest
from tests.postprocess.conftest import DIRECTION, ORIGIN, SPACING, make_case, write_sitk


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_acceptance_cli_keep_largest_and_fill_equals_scipy_reference(
    label_folder, tmp_path, capsys
):
    before = _digest(label_folder)
    out = tmp_path / "out"
    code = main(
        [
            "-i",
            str(label_folder),
            "-o",
            str(out),
            "--keep-largest",
            "1",
            "2",
            "3",
            "--fill-holes",
            "1",
            "2",
            "3",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "wrote 3 case(s)" in capsys.readouterr().out
    assert _digest(label_folder) == before  # inputs untouched
    for index in range(3):
        source = label_folder / f"case_{index:03d}.nii.gz"
        result = sitk.ReadImage(str(out / source.name))
        assert result.GetPixelID() == sitk.sitkUInt8
        original = sitk.ReadImage(str(source))
        assert result.GetSpacing() == original.GetSpacing()
        assert result.GetOrigin() == original.GetOrigin()
        assert result.GetDirection() == original.GetDirection()
        np.testing.assert_allclose(result.GetSpacing(), SPACING, rtol=1e-6)
        np.testing.assert_allclose(result.GetOrigin(), ORIGIN, rtol=1e-6)
        np.testing.assert_allclose(result.GetDirection(), DIRECTION, atol=1e-6)
        expected = ref_fill_holes(ref_keep_largest(make_case(index), [1, 2, 3]), [1, 2, 3])
        np.testing.assert_array_equal(sitk.GetArrayFromImage(result), expected)
        assert not np.array_equal(expected, make_case(index))  # the test data has work to do
        np.testing.assert_array_equal(nib.load(source).affine, nib.load(out / source.name).affine)
    assert (out / "dataset.json").is_file()
    plan = json.loads((out / "postprocessing.json").read_text())
    assert plan["schema_version"] == 2
    assert plan["keep_largest"] == [1, 2, 3]
    assert not (out / "case_000.npz").exists()


def test_float_labels_become_exact_uint8(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    labels = make_case(0).astype(np.float32)
    labels[labels == 1] = np.float32(1.0000001)
    labels[labels == 3] = np.float32(2.9999)
    write_sitk(labels, folder / "a.nii.gz")
    assert sitk.ReadImage(str(folder / "a.nii.gz")).GetPixelID() == sitk.sitkFloat32
    postprocess_folder(folder, tmp_path / "out", plan=PostprocessingPlan(fill_holes=(2,)))
    result = sitk.ReadImage(str(tmp_path / "out" / "a.nii.gz"))
    assert result.GetPixelID() == sitk.sitkUInt8
    array = sitk.GetArrayFromImage(result)
    assert set(np.unique(array).tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(array[make_case(0) == 1], 1)


def test_nifti_header_preserved_exactly(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    affine = np.array(
        [[0.0, -0.93, 0.11, 10.3], [0.71, 0.02, 0.0, -7.25], [0.05, 0.0, 2.4, 1.1], [0, 0, 0, 1]]
    )
    image = nib.Nifti1Image(make_case(1).T.astype(np.int16), affine)
    image.set_qform(affine, 1)
    image.set_sform(affine, 2)
    nib.save(image, folder / "b.nii.gz")
    postprocess_folder(folder, tmp_path / "out", plan=PostprocessingPlan(keep_largest=(1,)))
    result = nib.load(tmp_path / "out" / "b.nii.gz")
    np.testing.assert_array_equal(result.affine, image.affine)
    np.testing.assert_array_equal(
        result.header.get_qform(), nib.load(folder / "b.nii.gz").header.get_qform()
    )
    assert int(result.header["sform_code"]) == 2
    assert result.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(result.dataobj).T, ref_keep_largest(make_case(1), [1]))


def test_2d_png_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    labels = np.array(
        [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 0, 1, 0], [0, 1, 1, 1, 0], [1, 0, 0, 0, 0]],
        np.uint8,
    )
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(folder / "x.png"))
    postprocess_folder(
        folder,
        tmp_path / "out",
        plan=PostprocessingPlan(keep_largest=(1,), connectivity=1, fill_holes=(1,)),
        file_ending=".png",
    )
    result = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "x.png")))
    expected = labels.copy()
    expected[2, 2] = 1
    expected[4, 0] = 0
    np.testing.assert_array_equal(result, expected)


def test_min_size_in_mm3_uses_spacing(label_folder, tmp_path):
    voxel = float(np.prod(SPACING))
    out = tmp_path / "out"
    assert main(["-i", str(label_folder), "-o", str(out), "--min-size", f"3:{1.5 * voxel}mm3"]) == 0
    result = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case_000.nii.gz")))
    source = make_case(0)
    assert (result == 3).sum() == 27
    assert (source == 3).sum() > 27


def test_resume_skips_and_overwrite_redoes(label_folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["-i", str(label_folder), "-o", str(out), "--keep-largest", "1"]
    assert main(args) == 0
    (out / "case_001.nii.gz").unlink()
    stamp = (out / "case_000.nii.gz").stat().st_mtime_ns
    assert main(args) == 0
    assert "wrote 1 case(s), skipped 2" in capsys.readouterr().out
    assert (out / "case_000.nii.gz").stat().st_mtime_ns == stamp
    assert main([*args[:4], "--fill-holes", "2"]) == 1
    assert "different or unknown plan" in capsys.readouterr().err
    assert main([*args[:4], "--fill-holes", "2", "--overwrite"]) == 0


def test_parallel_equals_sequential(label_folder, tmp_path):
    plan = PostprocessingPlan(keep_largest_foreground=True, fill_holes=(1, 2))
    postprocess_folder(label_folder, tmp_path / "a", plan=plan)
    postprocess_folder(label_folder, tmp_path / "b", plan=plan, num_workers=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def _bad_value_folder(tmp_path: Path, value: float, dtype: type) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    write_sitk(make_case(0), folder / "a_good.nii.gz")
    labels = make_case(1).astype(dtype)
    labels[0, 0, 0] = value
    write_sitk(labels, folder / "b_bad.nii.gz")
    return folder


@pytest.mark.parametrize(
    ("value", "dtype", "match"),
    [
        pytest.param(
            2.4, np.float32, r"b_bad.nii.gz must be integer label values .*; got 2.4", id="float"
        ),
        pytest.param(300, np.uint16, r"b_bad.nii.gz: labels must be <= 255", id="above-255"),
    ],
)
def test_bad_file_names_it_and_leaves_no_output(tmp_path, capsys, value, dtype, match):
    folder = _bad_value_folder(tmp_path, value, dtype)
    out = tmp_path / "out"
    assert main(["-i", str(folder), "-o", str(out), "--keep-largest", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("nnunet-ext postprocess: error:")
    assert pytest.importorskip("re").search(match, err)
    assert not list(out.glob("*.nii.gz"))
    assert not list(out.glob(".*"))


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        pytest.param(
            ["--keep-largest", "7"],
            r"plan: keep_largest must be labels defined in .*dataset.json "
            r"\(1 \(myo\), 2 \(LV\), 3 \(RV\)\); got label 7",
            id="unknown-label",
        ),
        pytest.param([], "no step given", id="no-step"),
        pytest.param(
            ["--keep-largest", "1", "--plan", "p.json"],
            "--plan cannot be combined",
            id="plan-and-flags",
        ),
        pytest.param(
            ["--keep-largest", "1", "--connectivity", "4"],
            r"connectivity must be in \[1, 3\]",
            id="connectivity",
        ),
    ],
)
def test_cli_errors(label_folder, tmp_path, capsys, extra, match):
    assert main(["-i", str(label_folder), "-o", str(tmp_path / "out"), *extra]) == 1
    assert pytest.importorskip("re").search(match, capsys.readouterr().err)
    assert not list((tmp_path / "out").glob("*.nii.gz")) if (tmp_path / "out").exists() else True


def test_folder_errors(label_folder, tmp_path):
    plan = PostprocessingPlan(keep_largest=(1,))
    with pytest.raises(ValueError, match="output_dir must differ from input_dir"):
        postprocess_folder(label_folder, label_folder, plan=plan)
    with pytest.raises(NotADirectoryError, match="input_dir must be a folder"):
        postprocess_folder(tmp_path / "missing", tmp_path / "o", plan=plan)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no '\*.nii.gz' label files"):
        postprocess_folder(tmp_path / "empty", tmp_path / "o", plan=plan)
    with pytest.raises(ValueError, match="num_workers must be an int >= 1"):
        postprocess_folder(label_folder, tmp_path / "o", plan=plan, num_workers=0)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.nii.gz").write_bytes(b"garbage")
    with pytest.raises(
        ValueError, match=r"x.nii.gz must be a readable label image; got a read error"
    ):
        postprocess_folder(tmp_path / "junk", tmp_path / "o", plan=plan)


def test_help_does_not_import_torch():
    code = (
        "import sys, runpy\n"
        "sys.argv = ['x', 'apply', '--help']\n"
        "try:\n    runpy.run_module('nnunet_ext.postprocess', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0\n"
        "import nnunet_ext.postprocess\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'nnunetv2')]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "keep-largest" in result.stdout


def test_umbrella_command(label_folder, tmp_path):
    from nnunet_ext.cli import main as umbrella

    assert (
        umbrella(
            ["postprocess", "-i", str(label_folder), "-o", str(tmp_path / "o"), "--fill-holes", "2"]
        )
        == 0
    )
    assert (tmp_path / "o" / "case_002.nii.gz").is_file()


@pytest.mark.parametrize("labels", [["0"], ["1", "0"]])
def test_determine_labels_background_is_one_line_exit_1(label_folder, tmp_path, capsys, labels):
    out = tmp_path / "plan.json"
    argv = ["determine", "-i", str(label_folder), "-r", str(label_folder), "-o", str(out)]
    assert main([*argv, "--labels", *labels]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"nnunet-ext postprocess: error: --labels must be foreground labels (> 0); got "
        f"{[int(v) for v in labels]}."
    ]
    assert not out.exists()
