from __future__ import annotations

import json
import subprocess
import sys

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
