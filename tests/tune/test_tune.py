import json
import subprocess
import sys

import numpy as np
import pytest

from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.tune import tune_weights
from nnunet_ext.tune.cli import main
from nnunet_ext.tune.compact import compact_case, merge_cases
from nnunet_ext.tune.scoring import score_weights
from nnunet_ext.tune.search import search_weights


def test_compact_form_gives_the_same_dice_as_full_fusion():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 3, size=(6, 7))
    models = [
        rng.dirichlet([1, 1, 1], size=ref.shape).transpose(2, 0, 1).astype(np.float32)
        for _ in range(3)
    ]
    data = merge_cases([compact_case(models, ref)])
    weights = rng.random((3, 3)) + 0.1
    fused = sum((weights[m] / weights.sum(axis=0))[:, None, None] * models[m] for m in range(3))
    labels = fused.argmax(axis=0)
    expected = [
        2 * np.sum((labels == c) & (ref == c)) / (np.sum(labels == c) + np.sum(ref == c))
        for c in (1, 2)
    ]
    mean, _ = score_weights(data, weights, [1, 2])
    np.testing.assert_allclose(mean, expected, atol=1e-12)


def test_settled_voxels_are_not_stored():
    ref = np.zeros((100,), dtype=np.uint8)
    confident = np.stack([np.full(100, 0.99), np.full(100, 0.01)]).astype(np.float32)
    fixed, contested, kept = compact_case([confident, confident], ref)
    assert contested.shape == (2, 2, 0)
    assert kept.size == 0
    assert fixed[0, 0] == 100


def test_tuner_finds_which_model_to_trust_per_label(cv):
    model_dirs, ref_dir = cv
    result = tune_weights(model_dirs, ref_dir, cv_folds=3)
    # model 0 is good at label 1, model 1 at label 2
    assert result.weights[0, 1] > result.weights[1, 1]
    assert result.weights[1, 2] > result.weights[0, 2]
    gain = result.in_sample_gain
    assert gain[0] > 0.02
    assert gain[1] > 0.02
    assert result.cv_gain is not None
    assert result.cv_gain[0] > 0.01
    assert result.cv_gain[1] > 0.01
    for j in range(3):
        floor = max(v[j] for v in result.baselines.values())
        assert result.dice[j] >= floor - 0.005


def test_search_never_reports_worse_than_a_baseline_on_random_data():
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(3):
        ref = rng.integers(0, 3, size=(8, 8))
        models = [rng.dirichlet([2, 1, 1], size=ref.shape).transpose(2, 0, 1) for _ in range(2)]
        cases.append(compact_case(models, ref))
    result = search_weights(merge_cases(cases), [1, 2])
    # floors conflict on noise: no label below equal weights, and the worst shortfall below the
    # floors is no larger than that of any baseline that keeps every label at equal weights
    equal = result.baselines["equal"]
    assert np.all(result.dice >= equal - 1e-12)
    worst = np.max(np.maximum(result.floors - result.dice, 0))
    for baseline in result.baselines.values():
        if np.all(baseline >= equal):
            assert worst <= np.max(result.floors - baseline) + 1e-12
    np.testing.assert_allclose(result.weights.sum(axis=0), 1.0)


@pytest.mark.nnunet
def test_acceptance_spec_fused_by_the_ensemble_module_beats_every_baseline(cv, tmp_path, capsys):
    from nnunet_ext.ensemble.folders import ensemble_folders

    model_dirs, ref_dir = cv
    spec_path = tmp_path / "spec.json"
    assert (
        main(
            [
                "-i",
                *map(str, model_dirs),
                "--reference",
                str(ref_dir),
                "-o",
                str(spec_path),
                "--cv-folds",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "tuned" in out
    assert "held-out" in out
    spec = json.loads(spec_path.read_text())
    assert spec["schema_version"] == 2
    assert len(spec["members"]) == 2
    assert (tmp_path / "spec_report.json").is_file()
    assert (tmp_path / "spec_gains.png").read_bytes()[:4] == b"\x89PNG"

    ensemble_folders(None, tmp_path / "tuned", spec=spec_path)
    ensemble_folders(model_dirs, tmp_path / "equal")
    dice = {
        name: np.array([s.dice for s in evaluate_folder(folder, ref_dir).labels])
        for name, folder in [
            ("tuned", tmp_path / "tuned"),
            ("equal", tmp_path / "equal"),
            ("m0", model_dirs[0]),
            ("m1", model_dirs[1]),
        ]
    }
    best = np.max(np.stack([dice["equal"], dice["m0"], dice["m1"]]), axis=0)
    assert np.all(dice["tuned"] >= best - 0.005), dice
    assert dice["tuned"][0] > dice["equal"][0] + 0.02
    assert dice["tuned"][1] > dice["equal"][1] + 0.02


def test_cases_missing_from_a_model_are_listed(cv, tmp_path):
    import shutil

    model_dirs, ref_dir = cv
    partial = tmp_path / "partial"
    shutil.copytree(model_dirs[1], partial)
    (partial / "case_000.npz").unlink()
    result = tune_weights([model_dirs[0], partial], ref_dir, cv_folds=0)
    assert result.left_out == {"case_000": [str(partial)]}
    assert "case_000" not in result.cases
    assert result.cv_gain is None


def test_bad_inputs_exit_1_with_one_line(cv, tmp_path, capsys):
    model_dirs, ref_dir = cv
    assert (
        main(
            ["-i", str(model_dirs[0]), "--reference", str(ref_dir), "-o", str(tmp_path / "s.json")]
        )
        == 1
    )
    assert "at least 2 model folders" in capsys.readouterr().err
    assert (
        main(
            [
                "-i",
                str(model_dirs[0]),
                str(tmp_path / "nope"),
                "--reference",
                str(ref_dir),
                "-o",
                str(tmp_path / "s.json"),
            ]
        )
        == 1
    )
    assert "input folder not found" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_import_and_help_stay_torch_free():
    code = (
        "import sys, contextlib, io\n"
        "import nnunet_ext.tune, nnunet_ext.tune.cli as c\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: c.main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print([m for m in sys.modules if m == 'torch' or m.startswith('nnunetv2.training')])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_labels_above_the_uint8_ceiling_are_refused_up_front(tmp_path):
    """tune keeps class indices as uint8: a 257th class would wrap to 0, so it fails first."""
    import SimpleITK as sitk  # noqa: N813

    from nnunet_ext.synthetic import write_prediction_folder
    from nnunet_ext.tune.reading import load_cv_data

    labels = {"background": 0, **{f"label_{i}": i for i in range(1, 257)}}
    probabilities = {"a": np.full((257, 1, 2, 2), 1 / 257, dtype=np.float32)}
    model_dirs = [
        write_prediction_folder(
            tmp_path / f"model_{m}", probabilities, labels=labels, write_segmentations=False
        )
        for m in range(2)
    ]
    reference = tmp_path / "reference"
    reference.mkdir()
    sitk.WriteImage(
        sitk.GetImageFromArray(np.zeros((1, 2, 2), np.uint8)), str(reference / "a.nii.gz")
    )
    with pytest.raises(ValueError, match=r"labels must be <= 255 for tune .*up to 256\.$"):
        load_cv_data(model_dirs, reference)
