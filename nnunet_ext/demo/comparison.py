"""The demo's verdict: is the tuned, postprocessed ensemble better than equal weights?

:func:`compare_with_equal_weights` runs ``nnunet-ext compare``'s statistics on the two
evaluations the demo writes (``evaluation/ensemble_equal.json`` and
``evaluation/ensemble_tuned_postprocessed.json``) and returns the lines the summary prints
(:attr:`~nnunet_ext.demo.summary.DemoResult.comparison`).
"""

from __future__ import annotations

import math
import os

from nnunet_ext.compare import Comparison, compare_evaluations, summary_line, write_comparison

__all__ = ["EQUAL", "TUNED", "compare_with_equal_weights", "verdict_lines"]

#: The versions' names in the comparison.
EQUAL = "equal weights"
TUNED = "tuned + postprocessing"


def compare_with_equal_weights(
    equal_json: str | os.PathLike[str],
    tuned_json: str | os.PathLike[str],
    *,
    output_json: str | os.PathLike[str] | None = None,
) -> str:
    """Compare the tuned, postprocessed ensemble (B) with equal weights (A) on the test cases.

    Args:
        equal_json: ``evaluate --json`` of the equal-weights ensemble.
        tuned_json: ``evaluate --json`` of the tuned, postprocessed ensemble (the same cases,
            labels and metrics).
        output_json: Where to write the comparison's JSON, if anywhere.

    Returns:
        The verdict lines for the demo's summary.
    """
    comparison = compare_evaluations([equal_json, tuned_json], names=[EQUAL, TUNED])
    if output_json is not None:
        write_comparison(comparison, json_path=output_json)
    return verdict_lines(comparison)


def verdict_lines(comparison: Comparison) -> str:
    """The Dice rows per label with their intervals and verdicts, then the summary line."""
    lines = [
        f"{TUNED} against {EQUAL} on the {len(comparison.cases)} test cases (paired bootstrap "
        f"of the cases, {comparison.samples} resamples, {100 * comparison.confidence:g} % "
        "intervals)"
    ]
    for d in comparison.differences:
        if d.metric != "Dice":
            continue
        low, high = d.interval
        shown = "n/a" if math.isnan(d.difference) else f"{d.difference:+.4f}"
        lines.append(
            f"  {d.name:<12} Dice {shown} [{low:+.4f}, {high:+.4f}], better in "
            f"{100 * d.b_better:.0f} % of cases: {d.verdict}"
        )
    lines.append(f"  {summary_line(comparison)}")
    return "\n".join(lines)
