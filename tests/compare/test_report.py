"""The text tables, the one-line summary and the figure of a comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnunet_ext.compare import compare_evaluations, format_comparison, summary_line
from nnunet_ext.compare.report import plot_comparison

from ._data import write_versions

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("report")
    (root / "score.json").write_text(
        '{"schema_version": 1, "name": "mean Dice", "terms": [{"metric": "dice", "weight": 1}]}'
    )
    return write_versions(
        root, [0.03, 0.12, 0.03], num_cases=6, extra=["--score", str(root / "score.json")]
    )


def test_two_versions_print_one_table_with_the_score(files):
    comparison = compare_evaluations(files[:2], names=["equal", "tuned"], samples=200)
    text = format_comparison(comparison)
    assert "6 cases compared; 200 paired bootstrap resamples of the cases (seed 0)" in text
    assert "B = tuned against A = equal:" in text
    assert "mean Dice" in text
    assert "Ranks" not in text
    rows = [line for line in text.splitlines() if line.startswith(("1 ", "2 ", "3 "))]
    assert len(rows) == 3 * 2
    assert all(line.endswith("A better") for line in rows if " Dice " in line)
    assert summary_line(comparison).startswith("tuned vs equal: A better on ")
    assert "; score -" in summary_line(comparison)


def test_three_versions_add_the_ranks(files):
    text = format_comparison(compare_evaluations(files, samples=200))
    assert "B = v1 against A = v0:" in text
    assert "B = v2 against A = v0:" in text
    assert "Ranks: mean rank over the cases" in text
    assert "overall" in text


@pytest.mark.parametrize("count", [2, 3])
def test_the_figure_is_a_png(files, tmp_path, count):
    comparison = compare_evaluations(files[:count], samples=200)
    plot_comparison(comparison, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes().startswith(PNG)
