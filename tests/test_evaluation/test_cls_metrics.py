import math

import pytest
import torch

from mmkd.evaluation.functional import (aurc_eaurc, expected_calibration_error,
                                        negative_log_likelihood, topk_error)


def _t(rows, dtype=torch.float64):
    return torch.tensor(rows, dtype=dtype)


def _labels(values):
    return torch.tensor(values, dtype=torch.long)


# 4 samples, 3 classes; (rank of the true class among the 3 scores)
PROBS = _t([
    [0.5, 0.3, 0.2],  # y=0: rank 1
    [0.1, 0.6, 0.3],  # y=2: rank 2
    [0.7, 0.2, 0.1],  # y=2: rank 3
    [0.25, 0.45, 0.3],  # y=1: rank 1
])
LABELS = _labels([0, 2, 2, 1])


class TestTopkError:

    def test_hand_computed(self):
        # top-1 misses samples 1 and 2: 100 * (1 - 2/4) = 50
        assert topk_error(PROBS, LABELS, 1) == pytest.approx(50.0)
        # top-2 misses only sample 2 (true class ranked 3rd): 25
        assert topk_error(PROBS, LABELS, 2) == pytest.approx(25.0)

    def test_k_clamped_to_num_classes(self):
        # top-5 with C=3 is top-3, which always contains the label: 0
        assert topk_error(PROBS, LABELS, 5) == 0.0

    def test_invalid_k_raises(self):
        with pytest.raises(ValueError, match='`k`'):
            topk_error(PROBS, LABELS, 0)


class TestNegativeLogLikelihood:

    def test_hand_computed(self):
        # p(y) = 0.5, 0.3, 0.1, 0.45:
        # (0.693147 + 1.203973 + 2.302585 + 0.798508) / 4 = 1.249553
        nll = negative_log_likelihood(PROBS, LABELS)
        assert nll == pytest.approx(1.249553, abs=1e-6)

    def test_zero_probability_is_floored_at_eps(self):
        # -ln(1e-12) = 27.631021
        probs, labels = _t([[1.0, 0.0]]), _labels([1])
        nll = negative_log_likelihood(probs, labels)
        assert nll == pytest.approx(27.631021, abs=1e-6)
        # -ln(1e-3) = 6.907755
        nll = negative_log_likelihood(probs, labels, eps=1e-3)
        assert nll == pytest.approx(6.907755, abs=1e-6)


# conf 0.6 (correct) and 0.55 (wrong) share (0.5, 0.6]; 0.9 (correct) is in
# (0.8, 0.9]; 0.95 (correct) in (0.9, 1]; the other 6 bins are empty.
ECE_PROBS = [[0.6, 0.4], [0.55, 0.45], [0.9, 0.1], [0.05, 0.95]]
ECE_LABELS = _labels([0, 1, 0, 1])


class TestExpectedCalibrationError:

    def test_hand_computed_with_empty_bins(self):
        # (0.5, 0.6]: 2/4 * |1/2 - (0.6 + 0.55)/2| = 0.5 * 0.075 = 0.0375
        # (0.8, 0.9]: 1/4 * |1 - 0.9| = 0.025
        # (0.9, 1.0]: 1/4 * |1 - 0.95| = 0.0125
        # empty bins add 0; averaging over non-empty bins instead of
        # weighting by |S_b|/n would give 100 * 0.2 / 3 = 6.67
        # 100 * (0.0375 + 0.025 + 0.0125) = 7.5
        ece = expected_calibration_error(_t(ECE_PROBS), ECE_LABELS)
        assert ece == pytest.approx(7.5, abs=1e-9)

    @pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
    def test_confidence_on_edge_goes_to_lower_bin(self, dtype):
        # If 0.6 went to (0.6, 0.7] instead:
        # (0.5, 0.6]: 1/4 * |0 - 0.55| = 0.1375, (0.6, 0.7]: 1/4 * 0.4 = 0.1
        # -> 100 * (0.1375 + 0.1 + 0.025 + 0.0125) = 27.5, not 7.5.
        # float32 0.6 is 0.6000000238 > 0.6, still its own edge in float32.
        ece = expected_calibration_error(_t(ECE_PROBS, dtype), ECE_LABELS)
        assert ece == pytest.approx(7.5, abs=1e-5)

    def test_edge_at_one_fifth(self):
        # C=10, conf exactly 0.2 (correct) -> bin (0.1, 0.2], together with
        # conf 0.15 (wrong):
        # 2/2 * |1/2 - (0.2 + 0.15)/2| = 0.325 -> 32.5. In (0.2, 0.3] alone
        # it would give 1/2 * |1 - 0.2| + 1/2 * |0 - 0.15| = 0.475 -> 47.5.
        probs = _t([[0.2] + [0.8 / 9] * 9, [0.15] + [0.85 / 9] * 9])
        ece = expected_calibration_error(probs, _labels([0, 5]))
        assert ece == pytest.approx(32.5, abs=1e-9)

    def test_one_bin_gaps_cancel(self):
        # one bin: |acc - mean conf| = |3/4 - (0.6+0.55+0.9+0.95)/4| = 0
        ece = expected_calibration_error(_t(ECE_PROBS), ECE_LABELS, num_bins=1)
        assert ece == pytest.approx(0.0, abs=1e-9)

    def test_zero_confidence_in_first_bin(self):
        # conf 0, correct (argmax 0 == y): 1/1 * |1 - 0| -> 100
        assert expected_calibration_error(_t([[0.0, 0.0]]),
                                          _labels([0])) == 100.0

    def test_invalid_num_bins_raises(self):
        with pytest.raises(ValueError, match='`num_bins`'):
            expected_calibration_error(_t(ECE_PROBS), ECE_LABELS, num_bins=0)


class TestAurcEaurc:

    def test_hand_computed(self):
        # sorted by conf: 0.9 ok, 0.8 wrong, 0.7 ok, 0.6 wrong (input order
        # scrambled). r_k = 0, 1/2, 1/3, 2/4 -> AURC = 4/3 / 4 = 1/3
        # m=2: AURC* = (1/4) * (1/3 + 2/4) = 5/24; E-AURC = 1/3 - 5/24 = 1/8
        probs = _t([[0.7, 0.3], [0.6, 0.4], [0.9, 0.1], [0.2, 0.8]])
        labels = _labels([0, 1, 0, 0])
        aurc, eaurc = aurc_eaurc(probs, labels)
        assert aurc == pytest.approx(1000 / 3)
        assert eaurc == pytest.approx(125.0)

    def test_ties_keep_input_order(self):
        # samples 0 (wrong) and 1 (correct) both have conf 0.8; sample 2 is
        # correct with conf 0.6. m=1: AURC* = (1/3) * 1/(3-1+1) = 1/9.
        probs = _t([[0.8, 0.2], [0.8, 0.2], [0.4, 0.6]])
        # order wrong, ok, ok: r = 1, 1/2, 1/3 -> AURC = 11/18 = 0.61111
        # E-AURC = 11/18 - 2/18 = 1/2
        aurc, eaurc = aurc_eaurc(probs, _labels([1, 0, 1]))
        assert aurc == pytest.approx(1000 * 11 / 18)
        assert eaurc == pytest.approx(500.0)
        # the tied pair swapped: ok, wrong, ok: r = 0, 1/2, 1/3
        # -> AURC = 5/18 = 0.27778, E-AURC = 5/18 - 2/18 = 1/6
        aurc, eaurc = aurc_eaurc(probs, _labels([0, 1, 1]))
        assert aurc == pytest.approx(1000 * 5 / 18)
        assert eaurc == pytest.approx(1000 / 6)

    def test_all_correct(self):
        aurc, eaurc = aurc_eaurc(PROBS[[0, 3]], LABELS[[0, 3]])
        assert (aurc, eaurc) == (0.0, 0.0)

    def test_all_wrong(self):
        # r_k = 1 for all k -> AURC = 1; m=n=3: AURC* = (1/3)(1/1+2/2+3/3) = 1
        aurc, eaurc = aurc_eaurc(PROBS[[1, 2, 2]], LABELS[[1, 2, 2]])
        assert aurc == pytest.approx(1000.0)
        assert eaurc == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize('fn', [
    lambda p, y: topk_error(p, y, 1), negative_log_likelihood,
    expected_calibration_error, aurc_eaurc
])
class TestInputChecks:

    def test_length_mismatch(self, fn):
        with pytest.raises(ValueError, match='`labels` must have shape'):
            fn(PROBS, LABELS[:3])

    def test_probs_not_2d(self, fn):
        with pytest.raises(ValueError, match=r'`probs` must have shape'):
            fn(PROBS[0], LABELS[:1])

    def test_empty(self, fn):
        with pytest.raises(ValueError, match='empty'):
            fn(PROBS[:0], LABELS[:0])

    def test_label_out_of_range(self, fn):
        with pytest.raises(ValueError, match=r'\[0, 3\)'):
            fn(PROBS, _labels([0, 1, 2, 3]))


def test_nll_matches_math_log():
    # Guards the constant above against a typo: same sum via math.log.
    expected = -sum(math.log(p) for p in (0.5, 0.3, 0.1, 0.45)) / 4
    assert negative_log_likelihood(PROBS, LABELS) == pytest.approx(expected)
