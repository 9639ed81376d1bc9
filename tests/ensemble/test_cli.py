from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nnunet_ext.ensemble.cli import main


def test_help_and_import_do_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "import nnunet_ext.ensemble\n"
        "from nnunet_ext.ensemble.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0\n"
        "assert '--spec' in out.getvalue()\n"
        "bad = [m for m in sys.modules\n"
        "       if m == 'torch' or m.startswith(('torch.', 'nnunetv2.training'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    result = subprocess.run(
        [sys.executable, "-m", "nnunet_ext.ensemble", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--save-probabilities" in result.stdout


def test_run_does_not_import_torch(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0",))
    code = (
        "import sys\n"
        "from nnunet_ext.ensemble.cli import main\n"
        f"args = ['-i', {str(folders[0])!r}, {str(folders[1])!r}, '-o', {str(tmp_path / 'o')!r}]\n"
        "assert main(args) == 0\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_cli_spec_weights_and_usage_errors(make_folders, tmp_path, capsys):
    folders = make_folders(2, cases=("c0",))
    assert (
        main(
            ["-i", *map(str, folders), "-o", str(tmp_path / "w"), "--weights", "1", "2", "-j", "2"]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == ["c0"]
    assert summary["weights"][1] == [2.0, 2.0, 2.0, 2.0]
    with pytest.raises(SystemExit) as exc:
        main(
            ["-i", str(folders[0]), "-o", str(tmp_path / "x"), "--weights", "1", "--spec", "s.json"]
        )
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["-i", *map(str, folders), "-o", str(tmp_path / "x"), "--weights", "1"]) == 1
    assert "weights must have one value per input folder (2); got 1." in capsys.readouterr().err
    assert main(["-i", *map(str, folders), "-o", str(tmp_path / "x"), "--weights", "1", "-1"]) == 1
    assert "must be a finite number >= 0" in capsys.readouterr().err
    assert main(["-o", str(tmp_path / "x")]) == 1
    assert "-i/--input must list prediction folders" in capsys.readouterr().err
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "members": [{"path": "model_0", "weight": 1, "label_weights": {"Rv": 0}}],
            }
        )
    )
    assert main(["--spec", str(spec), "-o", str(tmp_path / "x")]) == 1
    assert "Did you mean 'RV'?" in capsys.readouterr().err
    assert main(["-i", *map(str, folders), "--spec", str(spec), "-o", str(tmp_path / "x")]) == 1
    assert "as many folders as the spec has members (1); got 2" in capsys.readouterr().err
    spec.write_text(json.dumps({"schema_version": 4, "members": []}))
    assert main(["--spec", str(spec), "-o", str(tmp_path / "x")]) == 1
    assert "schema_version must be 1, 2 or 3; got 4" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_umbrella_command(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0",))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnunet_ext",
            "ensemble",
            "-i",
            *map(str, folders),
            "-o",
            str(tmp_path / "u"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "u" / "c0.nii.gz").is_file()


def test_spec_roundtrip(tmp_path):
    from nnunet_ext.ensemble import EnsembleSpec

    spec = EnsembleSpec.from_weights(
        [tmp_path / "a", tmp_path / "b"], weights=[0.3, 0.7], label_weights=[{3: 1.0}, {"RV": 0.0}]
    )
    spec.save(tmp_path / "spec.json")
    raw = json.loads((tmp_path / "spec.json").read_text())
    assert raw["members"][0] == {"path": "a", "weight": 0.3, "label_weights": {"3": 1.0}}
    assert EnsembleSpec.load(tmp_path / "spec.json") == spec


def _blind_folders(tmp_path, rng):
    """Two members of three cases; member 1 never predicts label 3 in case c1."""
    from nnunet_ext.synthetic import make_case, model_probabilities, write_prediction_folder

    members: list[dict] = [{}, {}]
    for index in range(3):
        _, reference = make_case(rng, shape=(6, 24, 24))
        for m in range(2):
            p = model_probabilities(rng, reference, num_classes=4, good_labels=(1, 2, 3), noise=0.2)
            if m == 1 and index == 1:  # blind to RV: its mass goes to the background
                p[0] += p[3]
                p[3] = 0
            members[m][f"c{index}"] = p
    return [write_prediction_folder(tmp_path / f"m{m}", members[m]) for m in range(2)]


def test_qc_flags_the_blind_member_and_resumes(tmp_path, rng, capsys):
    from nnunet_ext.qc import load_qc

    folders = _blind_folders(tmp_path, rng)
    out = tmp_path / "ens"
    argv = ["-i", *map(str, folders), "-o", str(out), "--qc"]
    assert main(argv) == 0
    report = load_qc(out / "qc.json")
    assert report.members == ("m0", "m1")
    assert report.cases[0].case == "c1"
    rv = report.cases[0].labels[2]
    assert rv.name == "RV"
    assert rv.measures.empty_members == (1,)
    assert "member m1 predicts no voxel of the label; the others do" in rv.reasons
    assert (out / "qc.csv").read_text().count("\n") == 1 + 3 * 3
    capsys.readouterr()
    # a rerun skips complete cases and rewrites the same report; a lost record redoes its case
    before = (out / "qc.json").read_text()
    (out / "qc" / "cases" / "c2.json").unlink()
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["written"] == ["c2"]
    assert (out / "qc.json").read_text() == before
    # thresholds: a CLI flag overrides the default
    assert main([*argv, "--overwrite", "--qc-min-member-dice", "1.01"]) == 0
    assert all(c.flagged for c in load_qc(out / "qc.json").cases)


def test_qc_thresholds_come_from_the_spec_then_the_flags(tmp_path, rng, capsys):
    from nnunet_ext.ensemble import EnsembleSpec
    from nnunet_ext.qc import QcThresholds, load_qc

    folders = _blind_folders(tmp_path, rng)
    spec = EnsembleSpec(
        EnsembleSpec.from_weights(folders).members, qc=QcThresholds(label_components={"LV": 0})
    )
    spec.save(tmp_path / "spec.json")
    assert json.loads((tmp_path / "spec.json").read_text())["schema_version"] == 3
    out = tmp_path / "ens"
    assert main(["--spec", str(tmp_path / "spec.json"), "-o", str(out), "--qc"]) == 0
    report = load_qc(out / "qc.json")
    assert report.thresholds.label_components == {"LV": 0}
    assert all(
        any("connected components (> 0)" in r for r in c.labels[1].reasons) for c in report.cases
    )
    assert (
        main(
            [
                "--spec",
                str(tmp_path / "spec.json"),
                "-o",
                str(out),
                "--qc",
                "--overwrite",
                "--qc-max-volume-cv",
                "0.9",
            ]
        )
        == 0
    )
    again = load_qc(out / "qc.json").thresholds
    assert again.max_volume_cv == 0.9
    assert again.label_components == {"LV": 0}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            ["--qc-maps"],
            "--qc must come with --qc-maps, --qc-report and the QC thresholds",
            id="no-qc",
        ),
        pytest.param(["--qc", "--allow-missing"], "qc must compare every member", id="missing"),
        pytest.param(
            ["--qc", "--qc-max-volume-cv", "-1"], "--qc-max-volume-cv must be >= 0", id="neg"
        ),
        pytest.param(["--qc", "--qc-report", "r.txt"], "--qc-report", id="report-suffix"),
    ],
)
def test_qc_usage_errors_write_nothing(make_folders, tmp_path, capsys, extra, message):
    folders = make_folders(2, cases=("c0",))
    out = tmp_path / "x"
    assert main(["-i", *map(str, folders), "-o", str(out), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_qc_refuses_region_predictions(tmp_path, rng, capsys):
    from nnunet_ext.synthetic import write_prediction_folder

    p = rng.random((2, 3, 8, 8)).astype(np.float32)
    labels = {"background": 0, "whole": [1, 2], "core": 2}
    folders = [
        write_prediction_folder(
            tmp_path / f"r{m}", {"c0": p}, labels=labels, regions_class_order=[1, 2]
        )
        for m in range(2)
    ]
    assert main(["-i", *map(str, folders), "-o", str(tmp_path / "x"), "--qc"]) == 1
    assert "qc must be used with label (softmax) predictions" in capsys.readouterr().err
