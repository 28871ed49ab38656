import numpy as np
import pytest

from parley.nlu.reliability import reliability


def test_perfectly_calibrated_confidences_should_have_zero_error():
    # 0.8 right 8 times in 10, 0.3 right 3 times in 10
    confidences = [0.8] * 10 + [0.3] * 10
    correct = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 7
    assert reliability(confidences, correct).expected_calibration_error == pytest.approx(0.0)


def test_underconfidence_should_show_as_the_gap_weighted_by_bin_share():
    result = reliability([0.25, 0.25, 0.25, 0.95], [True, True, False, True])
    # bin (0.2, 0.3]: conf 0.25, acc 2/3, share 3/4; bin (0.9, 1]: conf 0.95, acc 1, share 1/4
    assert result.expected_calibration_error == pytest.approx(0.75 * (2 / 3 - 0.25) + 0.25 * 0.05)
    assert sum(b.count for b in result.bins) == 4


def test_bin_edges_should_be_right_closed_and_zero_or_missing_in_the_first_bin():
    result = reliability([0.0, None, 0.1, 0.1000001, 1.0], [False, False, False, False, True])
    counts = [b.count for b in result.bins]
    assert counts[0] == 3 and counts[1] == 1 and counts[-1] == 1
    assert result.bins[0].low == 0.0 and result.bins[-1].high == 1.0


def test_mismatched_lengths_should_raise():
    with pytest.raises(ValueError):
        reliability([0.5], [True, False])


def test_random_calibrated_samples_should_have_small_error():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 20000)
    correct = rng.uniform(0, 1, 20000) < conf
    assert reliability(conf.tolist(), correct.tolist()).expected_calibration_error < 0.02
