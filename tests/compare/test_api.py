"""compare_evaluations on evaluations with a known per-case shift (issue 31, acceptance 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnunet_ext.compare import compare_evaluations
from nnunet_ext.compare.stats import A_BETTER, B_BETTER, NO_DIFFERENCE
from nnunet_ext.evaluate import load_evaluation, write_evaluation

from ._data import with_dice, write_versions

NUM_CASES = 50
#: Interval ends may differ from an exact shift by float rounding of ``a + 0.01 - a``.
ROUNDING = 1e-12


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory):
    """A real evaluation of 50 cases (three labels), the base of the constructed versions."""
    (path,) = write_versions(tmp_path_factory.mktemp("template"), [0.05], num_cases=NUM_CASES)
    return load_evaluation(path)


def _dice(evaluation) -> np.ndarray:
    return np.array([case.dice for case in evaluation.cases])


def _compare(template, tmp_path: Path, a: np.ndarray, b: np.ndarray, **options):
    paths = []
    for name, dice in (("A", a), ("B", b)):
        path, _ = write_evaluation(with_dice(template, dice), tmp_path / f"{name}.json")
        paths.append(path)
    return compare_evaluations(paths, **options)


def _dice_rows(comparison):
    return {d.name: d for d in comparison.differences if d.metric == "Dice"}


def test_b_equal_to_a_plus_a_hundredth_on_every_case_is_b_better(template, tmp_path):
    a = _dice(template)
    rows = _dice_rows(_compare(template, tmp_path, a, a + 0.01))
    assert set(rows) == {"myocardium", "LV", "RV"}
    for row in rows.values():
        assert row.verdict == B_BETTER
        low, high = row.interval
        assert low - ROUNDING <= 0.01 <= high + ROUNDING
        assert high - low < ROUNDING  # every resample has the same mean difference
        assert row.difference == pytest.approx(0.01, abs=ROUNDING)
        assert row.b_better == 1.0
        assert row.a_better == 0.0
        assert row.num_cases == NUM_CASES


def test_noise_of_mean_zero_is_no_difference(template, tmp_path):
    a = _dice(template)
    noise = np.random.default_rng(3).normal(0.0, 0.02, size=a.shape)
    noise -= noise.mean(axis=0)  # exactly mean 0 per label
    rows = _dice_rows(_compare(template, tmp_path, a, a + noise))
    for row in rows.values():
        assert row.verdict == NO_DIFFERENCE
        low, high = row.interval
        assert low < 0 < high
        assert row.difference == pytest.approx(0.0, abs=1e-12)
        assert 0.2 < row.b_better < 0.8


def test_better_on_one_label_and_worse_on_another(template, tmp_path):
    a = _dice(template)
    noise = np.random.default_rng(4).normal(0.0, 0.01, size=a.shape)
    shift = np.array([0.02, -0.02, 0.0])
    b = a + shift + noise * np.array([1.0, 1.0, 0.0])
    rows = _dice_rows(_compare(template, tmp_path, a, b))
    assert rows["myocardium"].verdict == B_BETTER
    assert rows["LV"].verdict == A_BETTER
    assert rows["RV"].verdict == NO_DIFFERENCE
    assert rows["RV"].interval == (0.0, 0.0)
    assert rows["myocardium"].interval[0] < 0.02 < rows["myocardium"].interval[1]
    assert rows["LV"].interval[0] < -0.02 < rows["LV"].interval[1]


def test_the_interval_covers_the_true_difference_in_at_least_93_of_100_simulations(
    template, tmp_path
):
    """B = A + 0.01 + noise (sd 0.03) per case: the true mean difference is 0.01. The width
    is compared with the normal theory's 2 * 1.96 * 0.03 / sqrt(50), so that a trivially
    wide interval (covering by being wide) fails too."""
    true_difference, sd = 0.01, 0.03
    covered, widths, detected = 0, [], 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        a = np.clip(rng.normal(0.8, 0.08, size=(NUM_CASES, 3)), 0.0, 0.98)
        b = a + true_difference + rng.normal(0.0, sd, size=a.shape)
        row = _dice_rows(_compare(template, tmp_path, a, b, seed=seed))["myocardium"]
        low, high = row.interval
        covered += low <= true_difference <= high
        widths.append(high - low)
        detected += row.verdict == B_BETTER
    assert covered >= 93, covered
    expected = 2 * 1.96 * sd / np.sqrt(NUM_CASES)
    assert 0.85 * expected < np.mean(widths) < 1.1 * expected
    # the shift is 2.36 standard errors: normal theory finds it with power 0.65
    assert 50 <= detected <= 80, detected


def test_the_means_are_the_evaluations_means(tmp_path):
    files = write_versions(tmp_path, [0.04, 0.08], extra=["--metrics", "dice", "hd95"])
    comparison = compare_evaluations(files, names=["good", "worse"])
    written = [json.loads(f.read_text())["mean"] for f in files]
    for d in comparison.differences:
        assert (d.a, d.b) == ("good", "worse")
        for side, mean in ((0, d.mean_a), (1, d.mean_b)):
            assert mean == pytest.approx(written[side][d.label][d.metric], nan_ok=True, rel=0)
        if d.metric == "Dice":
            assert d.verdict == A_BETTER  # twice the noise
    assert {d.metric for d in comparison.differences} == {"Dice", "IoU", "HD95"}
    assert comparison.ranking == ()


def test_the_score_is_compared_as_evaluate_scores_it(tmp_path):
    score = {
        "schema_version": 1,
        "terms": [
            {"metric": "dice", "weight": 0.5},
            {"metric": "hd95", "weight": 0.5, "cap_mm": 20},
        ],
        "label_weights": {"3": 2},
    }
    (tmp_path / "score.json").write_text(json.dumps(score))
    files = write_versions(tmp_path, [0.04, 0.1], extra=["--score", str(tmp_path / "score.json")])
    comparison = compare_evaluations(files)
    (row,) = [d for d in comparison.differences if d.metric == "score"]
    values = [json.loads(f.read_text())["score"]["value"] for f in files]
    assert (row.mean_a, row.mean_b) == pytest.approx(values, rel=1e-12)
    assert row.label is None
    assert row.verdict == A_BETTER
    assert row.interval[0] <= row.difference <= row.interval[1]


def test_three_versions_are_ranked(tmp_path):
    files = write_versions(tmp_path, [0.06, 0.02, 0.15], num_cases=10)
    comparison = compare_evaluations(files, names=["mid", "best", "worst"], samples=500)
    overall = comparison.ranking[-1]
    assert (overall.name, overall.metric) == ("overall", "all")
    assert overall.rank == (2.0, 1.0, 3.0)
    assert overall.probability_first[1] > 0.95
    assert sum(overall.probability_first) == pytest.approx(1.0)
    for standing in comparison.ranking:
        assert sum(standing.mean_rank) == pytest.approx(6.0)  # 1 + 2 + 3 on every case
    assert len(comparison.ranking) == 3 * 2 + 1
    assert [d.b for d in comparison.differences] == ["best"] * 6 + ["worst"] * 6


def test_the_same_seed_gives_the_same_intervals(tmp_path):
    files = write_versions(tmp_path, [0.05, 0.06])
    first = compare_evaluations(files, seed=7, samples=300)
    assert compare_evaluations(files, seed=7, samples=300) == first
    other = compare_evaluations(files, seed=8, samples=300)
    assert [d.interval for d in other.differences] != [d.interval for d in first.differences]
    assert (first.samples, first.seed) == (300, 7)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"samples": 10}, "samples must be an integer >= 100; got 10"),
        ({"seed": -1}, "seed must be an integer >= 0; got -1"),
        ({"names": ["a"]}, r"names must be 2 distinct non-empty names"),
        ({"names": ["a", "a"]}, r"names must be 2 distinct"),
    ],
)
def test_bad_options_are_refused(tmp_path, options, message):
    files = write_versions(tmp_path, [0.05, 0.06], num_cases=2)
    with pytest.raises(ValueError, match=message):
        compare_evaluations(files, **options)
