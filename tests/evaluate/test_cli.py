import json
import subprocess
import sys

from nnunet_ext.cli import main as umbrella_main
from nnunet_ext.evaluate.cli import main

from ._data import make_folders


def test_cli_prints_table_and_writes_json_and_csv(tmp_path, capsys):
    pred_dir, ref_dir = make_folders(tmp_path)
    out = tmp_path / "out" / "summary.json"
    out.parent.mkdir()
    assert main(["-i", str(pred_dir), "-r", str(ref_dir), "--json", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "label" in stdout
    assert "empty ref" in stdout
    assert "fg mean" in stdout
    assert "blob" in stdout
    assert "4/5" in stdout
    assert json.loads(out.read_text())["conventions"]["empty"] == "nan"
    assert (tmp_path / "out" / "summary_per_case.csv").is_file()
    # a rerun refuses to replace the outputs without --overwrite
    assert main(["-i", str(pred_dir), "-r", str(ref_dir), "--json", str(out)]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert (
        main(
            [
                "-i",
                str(pred_dir),
                "-r",
                str(ref_dir),
                "--json",
                str(out),
                "--overwrite",
                "--empty",
                "one",
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["conventions"]["empty"] == "one"


def test_missing_prediction_exits_non_zero_naming_the_case_and_writes_nothing(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path)
    (pred_dir / "case_02.nii.gz").unlink()
    out = tmp_path / "summary.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnunet_ext.evaluate",
            "-i",
            str(pred_dir),
            "-r",
            str(ref_dir),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "case_02" in proc.stderr
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred", "ref"]


def test_umbrella_command_and_allow_missing(tmp_path, capsys):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=3)
    (pred_dir / "case_02.nii.gz").unlink()
    assert (
        umbrella_main(["evaluate", "-i", str(pred_dir), "-r", str(ref_dir), "--allow-missing"]) == 0
    )
    assert "1 reference case(s) without prediction left out" in capsys.readouterr().out


def test_usage_errors(tmp_path, capsys):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=1)
    assert (
        main(["-i", str(pred_dir), "-r", str(ref_dir), "--json", str(tmp_path / "summary.txt")])
        == 1
    )
    assert "must end with .json" in capsys.readouterr().err
    assert main(["-i", str(tmp_path / "nope"), "-r", str(ref_dir)]) == 1
    assert "prediction folder must be an existing folder" in capsys.readouterr().err


def test_import_and_help_stay_torch_free():
    code = (
        "import sys, contextlib, io\n"
        "import nnunet_ext.evaluate, nnunet_ext.evaluate.cli as c\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: c.main(['--help'])\n"
        "    except SystemExit: pass\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('nnunetv2.training')]\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_preset_scores_a_folder_and_score_takes_a_preset(tmp_path, capsys):
    from nnunet_ext.synthetic_brats import make_brats_cases

    ref_dir, pred_dir = make_brats_cases(tmp_path / "cases", num_cases=3, shape=(20, 24, 24))
    out = tmp_path / "preset.json"
    common = ["-i", str(pred_dir), "-r", str(ref_dir)]
    assert main([*common, "--preset", "brats2026-glioma", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "lesionwise_dsc_mean" in captured.out
    assert "1 reference case(s) without prediction" in captured.out
    data = json.loads(out.read_text())
    assert data["preset"]["name"] == "brats2026-glioma"
    assert data["missing_predictions"] == ["BraTS-GLI-00003-000"]
    again = tmp_path / "score.json"
    assert main([*common, "--score", "brats2026-glioma", "--json", str(again)]) == 0
    assert json.loads(again.read_text())["score"] == data["score"]
    capsys.readouterr()
    assert main([*common, "--preset", "brats2026-glioma", "--metrics", "hd95"]) == 1
    assert "--metrics must not be given with --preset brats2026-glioma" in capsys.readouterr().err
    assert main([*common, "--preset", "brats2024"]) == 1
    assert "preset must be one of brats2026-glioma" in capsys.readouterr().err


def test_convention_brats_warns_once_naming_the_preset(tmp_path, capsys):
    pred_dir, ref_dir = make_folders(tmp_path)
    args = ["-i", str(pred_dir), "-r", str(ref_dir), "--metrics", "hd95", "--convention", "brats"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("--convention brats is deprecated") == 1
    assert "--preset brats2023" in err
