"""The held-out rule of postprocess: tune's rule, a gain without a loss counted above
``NO_LOSS_GAIN`` only (tune: ``MIN_GAIN``)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext._stats import CASE_TOLERANCE, MIN_GAIN, NOISE_Z, bootstrap_noise, gain_counts
from nnunet_ext.postprocess.heldout import NO_LOSS_GAIN, judge_step

#: Held-out LV differences of keep_top_k chosen on 8 of one demo draw's cases (no loss, within
#: the noise); the same step cost a ninth case 0.09 Dice.
DEMO = np.array([0.0005, 0.0, 0.0002, 0.0, 0.004, 0.0, 0.0, 0.0051])


def test_the_demo_step_counts_for_tune_but_not_for_postprocess():
    assert MIN_GAIN < DEMO.mean() < NOISE_Z * bootstrap_noise(DEMO)
    assert gain_counts(DEMO)  # tune's rule: no loss, so the noise test is waived
    assert not judge_step(0, DEMO[:, None])["passes"]
    assert judge_step(0, DEMO[:, None] + NO_LOSS_GAIN)["passes"]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=15),
    st.floats(1e-4, 1.0),
)
def test_judge_step_is_tunes_rule_with_the_stricter_no_loss_gain(values, scale):
    diff = np.array(values) * scale
    mean = diff.mean()
    beats_noise = mean > NOISE_Z * bootstrap_noise(diff)
    no_loss = mean > NO_LOSS_GAIN and diff.min() >= -CASE_TOLERANCE
    verdict = judge_step(0, np.column_stack([diff, np.zeros_like(diff)]))
    assert verdict["passes"] == (mean > MIN_GAIN and (beats_noise or no_loss))
    if verdict["passes"]:
        assert gain_counts(diff)  # never kept where tune's rule would refuse
