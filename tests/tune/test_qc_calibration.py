from __future__ import annotations

import json

from nnunet_ext.ensemble import EnsembleSpec
from nnunet_ext.ensemble.cli import main as ensemble_main
from nnunet_ext.qc import load_qc
from nnunet_ext.tune.cli import main
from nnunet_ext.tune.qc_calibration import calibrate_qc


def test_qc_calibrate_stores_thresholds_and_volume_ranges_in_the_spec(cv, tmp_path, capsys):
    dirs, ref = cv
    spec = tmp_path / "spec.json"
    argv = ["-i", *map(str, dirs), "-r", str(ref), "-o", str(spec), "--cv-folds", "0"]
    assert main([*argv, "--steps", "4", "--qc-calibrate"]) == 0
    assert "QC thresholds calibrated on the CV cases" in capsys.readouterr().out
    data = json.loads(spec.read_text())
    assert data["schema_version"] == 3
    qc = EnsembleSpec.load(spec).qc
    assert qc is not None
    assert set(qc.volume_ranges) == {"myocardium", "LV", "RV"}
    assert qc.volume_ranges["RV"][0] == 0.0  # RV is absent from some CV references
    assert all(low <= high for low, high in qc.volume_ranges.values())
    # the same calibration again gives the same thresholds
    assert calibrate_qc(spec, ref) == qc
    # ensemble --spec --qc uses them
    out = tmp_path / "fused"
    assert ensemble_main(["--spec", str(spec), "-o", str(out), "--qc"]) == 0
    assert load_qc(out / "qc.json").thresholds == qc
