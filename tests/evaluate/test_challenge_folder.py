"""Acceptance 1 of issue 26: BraTS 2026 glioma and metastases equal brats-evaluation 0.0.10.

The synthetic cases (``nnunet_ext.synthetic_brats``, BraTS-named) have several lesions per case,
touching lesions, an empty enhancing tumour, a prediction with only false positives, small
lesions, anisotropic spacing and a missing prediction; the official ``brats-evaluate`` and
``brats-parse-metrics`` command lines run once per configuration in the oracle venv.
"""

from __future__ import annotations

import json
import math

import pytest

from nnunet_ext.evaluate.challenge_folder import evaluate_preset, write_preset_evaluation
from nnunet_ext.synthetic_brats import make_brats_cases
from tests.evaluate import oracles

CONFIGS = {
    "brats2026-glioma": ("gli", "seg", "BraTS-GLI", 1),
    "brats2026-metastases": ("mets", "mets", "BraTS-MET", 2),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def scored(request, tmp_path_factory):
    preset = request.param
    config, parser, prefix, seed = CONFIGS[preset]
    root = tmp_path_factory.mktemp(preset)
    ref_dir, pred_dir = make_brats_cases(root, num_cases=12, seed=seed, prefix=prefix)
    official = oracles.ask(
        {
            "task": "brats",
            "reference_dir": str(ref_dir),
            "prediction_dir": str(pred_dir),
            "config": config,
            "parser": parser,
        }
    )
    ours = evaluate_preset(pred_dir, ref_dir, preset, num_workers=1)
    return preset, official, ours, root


def _same(official, ours) -> bool:
    if official is None:
        return isinstance(ours, float) and math.isnan(ours)
    if isinstance(official, str):
        return official == "inf" and ours == math.inf
    return ours == pytest.approx(official, abs=1e-6)


def test_every_per_case_value_equals_brats_evaluate(scored):
    preset, official, ours, _ = scored
    rows = {row["subject_id"]: row for row in official}
    assert len(ours.cases) == 12
    assert ours.missing_predictions == [ours.cases[-1]]
    checked = 0
    for case, row in zip(ours.cases, ours.rows, strict=True):
        expected = rows[f"{case}.nii.gz"]
        assert set(expected) - {"subject_id"} == set(row), case
        for column, value in row.items():
            assert _same(expected[column], value), (preset, case, column, expected[column], value)
            checked += 1
    assert checked >= 12 * 50
    # the fixtures reach the edge cases: NaN, infinite, penalised and partial values
    values = [v for row in ours.rows for v in row.values()]
    assert any(math.isnan(v) for v in values)
    assert any(v == 373.0 for v in values)
    assert any(0.0 < v < 1.0 for v in values)


def test_means_equal_the_parser_mean_row(scored):
    _, official, ours, _ = scored
    mean = next(row for row in official if row["subject_id"] == "mean")
    for column, value in ours.means.items():
        assert _same(mean[column], value), (column, mean[column], value)


def test_written_json_keeps_every_count(scored, tmp_path):
    preset, _, ours, _ = scored
    json_path, csv_path = write_preset_evaluation(ours, tmp_path / "summary.json")
    data = json.loads(json_path.read_text())
    assert data["preset"]["name"] == preset
    first = data["metric_per_case"][0]["values"]
    assert {"all_instance_tp_et", "all_instance_fp_et", "all_instance_fn_et"} <= set(first)
    assert csv_path.read_text().splitlines()[0].startswith("case,all_instance_tp_")
    assert data["score"] == pytest.approx(ours.score)
