import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmkd.evaluation.functional import (aurc_eaurc, ece_bin_index, expected_calibration_error,
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
        nll = negative_log_likelihood(PROBS.log(), LABELS)
        assert nll == pytest.approx(1.249553, abs=1e-6)

    def test_large_logit_margins_are_not_clipped(self):
        # logits (0, -m), label 1: -log p[1] = m + log(1 + e^-m) = m (e^-60 = 9e-27), as
        # cross-entropy on the logits gives. Softmax probabilities would be 9e-27, 4e-44, 7e-66
        # and 0 in float32, and a 1e-12 floor would clip each term at 27.63.
        # mean(60, 100, 150, 200) = 127.5
        logits = torch.tensor([[0.0, -60.0], [0.0, -100.0], [0.0, -150.0], [0.0, -200.0]])
        labels = _labels([1, 1, 1, 1])
        nll = negative_log_likelihood(F.log_softmax(logits, dim=1), labels)
        assert nll == pytest.approx(127.5, abs=1e-4)
        assert nll == pytest.approx(F.cross_entropy(logits.double(), labels).item())


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

    @pytest.mark.parametrize('dtype,expected', [(torch.float64, 7.5), (torch.float32, 27.5)])
    def test_confidence_on_edge_bins_as_the_reference(self, dtype, expected):
        # float64 0.6 is the edge itself: (0.5, 0.6], ECE 7.5 as above. float32 0.6 is
        # 0.6000000238 > 0.6, so the reference's float64 comparison puts it in (0.6, 0.7]:
        # (0.5, 0.6]: 1/4 * |0 - 0.55| = 0.1375, (0.6, 0.7]: 1/4 * |1 - 0.6| = 0.1
        # -> 100 * (0.1375 + 0.1 + 0.025 + 0.0125) = 27.5.
        ece = expected_calibration_error(_t(ECE_PROBS, dtype), ECE_LABELS)
        assert ece == pytest.approx(expected, abs=1e-5)

    def test_float32_edge_hand_computed(self):
        # float32 0.2 = 0.20000000298 (correct) and 0.25 (wrong) share (0.2, 0.3]:
        # 2/2 * |1/2 - (0.2 + 0.25)/2| = 0.275 -> 27.5. With 0.2 in (0.1, 0.2] instead:
        # 1/2 * |1 - 0.2| + 1/2 * |0 - 0.25| = 0.525 -> 52.5.
        probs = _t([[0.2] * 5, [0.25] + [0.1875] * 4], torch.float32)
        ece = expected_calibration_error(probs, _labels([0, 1]))
        assert ece == pytest.approx(27.5, abs=1e-5)

    def test_every_edge_in_the_reference_bin(self):
        # float32 b/10 and its float32 neighbours, and the float64 bounds themselves.
        confs = _edge_confidences()
        got = ece_bin_index(confs, 10).tolist()
        assert got == [_reference_bin(c) for c in confs.tolist()]
        # 0.1, 0.2, 0.3, 0.4, 0.6, 0.8 round up in float32: one bin above their edge
        f32 = torch.tensor([b / 10 for b in range(1, 11)], dtype=torch.float32)
        assert ece_bin_index(f32, 10).tolist() == [1, 2, 3, 4, 4, 6, 6, 8, 8, 9]

    def test_ece_with_confidences_on_every_edge_matches_reference(self):
        # Per edge b/10 (float32): a correct sample on the edge and a wrong one 0.03 below.
        confs = [c for b in range(1, 11) for c in (b / 10, b / 10 - 0.03)]
        probs = torch.tensor([[c] + [(1 - c) / 10] * 10 for c in confs], dtype=torch.float32)
        labels = _labels([0 if k % 2 == 0 else 1 for k in range(len(confs))])
        ece = expected_calibration_error(probs, labels)
        assert ece == pytest.approx(_reference_ece(probs, labels), abs=1e-9)

    def test_confidence_one_in_last_bin_for_any_num_bins(self):
        # np.arange(1/6, 7/6, 1/6) ends at 0.9999999999999999, so an upper bound taken from
        # it would drop a confidence of 1.0; here the last bin is closed at 1.
        # conf 1.0 wrong and 0.9 correct share (5/6, 1]: |1/2 - 0.95| = 0.45 -> 45
        # (the 0.9 sample alone would give 1/2 * 0.1 -> 5).
        probs = _t([[1.0, 0.0], [0.9, 0.1]])
        assert expected_calibration_error(probs, _labels([1, 0]), 6) == pytest.approx(45.0)

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

    def test_tie_order_spread_stated_in_docstring(self):
        # The documented case: 10,000 samples, 20 % wrong; 5,000 tied at confidence 1.0 (100
        # of them wrong), the other 5,000 distinct and more often wrong the less confident.
        # numpy's Generator, not torch's: the same draws on every supported torch (2.1 - 2.9)
        rng = np.random.default_rng(0)
        n, tied = 10_000, 5_000
        conf = torch.cat([torch.ones(tied, dtype=torch.float64), 0.9999 - 0.4998 * torch.arange(
            n - tied, dtype=torch.float64) / (n - tied - 1)])
        wrong = torch.zeros(n, dtype=torch.bool)
        wrong[:100] = True
        weights = np.arange(1.0, n - tied + 1)
        wrong[tied + torch.from_numpy(rng.choice(n - tied, 1_900, replace=False,
                                                 p=weights / weights.sum()))] = True
        probs, labels = torch.stack([conf, 1 - conf], 1), wrong.long()
        rest = torch.arange(tied, n)
        orders = torch.stack([torch.cat([torch.from_numpy(rng.permutation(tied)), rest])
                              for _ in range(1000)])
        # the stable sort keeps each input order of the tied block: AURC of all 1,000 at once
        ranks = torch.arange(1, n + 1, dtype=torch.float64)
        values = 1000 * (wrong[orders].double().cumsum(1) / ranks).mean(1)
        for k in range(3):
            assert aurc_eaurc(probs[orders[k]], labels[orders[k]])[0] == pytest.approx(
                values[k].item(), rel=1e-12)
        assert (round(values.min().item(), 1), round(values.max().item(), 1)) == (54.6, 60.6)
        assert round(values.std().item(), 1) == 1.0
        # any order lies between the tied errors ranked last and ranked first
        errors_last = torch.cat([torch.arange(100, tied), torch.arange(100), rest])
        assert round(aurc_eaurc(probs[errors_last], labels[errors_last])[0], 1) == 47.5
        assert round(aurc_eaurc(probs, labels)[0], 1) == 96.5

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
        with pytest.raises(ValueError, match=r'probs` must have shape'):
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
    assert negative_log_likelihood(PROBS.log(), LABELS) == pytest.approx(expected)


# The reference (PS-KD / PSKD-ML utils/metric.py), in our words: confidences come from
# float32 softmax rows through .tolist(), i.e. float64 copies of the float32 values; bin b
# holds l < c <= u with upper bounds u = np.arange(w, 1 + w, w), lower bounds u - w,
# w = 1 / num_bins; ECE = 100 * sum_b |acc_b - conf_b| * |S_b| / n.
def _reference_bounds(num_bins=10):
    width = 1.0 / num_bins
    uppers = np.arange(width, 1 + width, width)
    return uppers - width, uppers


def _reference_bin(conf, num_bins=10):
    lowers, uppers = _reference_bounds(num_bins)
    hits = [b for b, (lo, up) in enumerate(zip(lowers, uppers)) if lo < conf <= up]
    assert len(hits) == 1, conf
    return hits[0]


def _reference_ece(probs, labels, num_bins=10):
    conf = probs.max(1).values.tolist()
    pred = probs.argmax(1).tolist()
    total = 0.0
    for lo, up in zip(*_reference_bounds(num_bins)):
        members = [(p == y, c) for p, y, c in zip(pred, labels.tolist(), conf) if lo < c <= up]
        if members:
            acc = sum(ok for ok, _ in members) / len(members)
            mean_conf = sum(c for _, c in members) / len(members)
            total += abs(acc - mean_conf) * len(members)
    return 100 * total / len(conf)


def _edge_confidences():
    f32 = torch.tensor([b / 10 for b in range(1, 11)], dtype=torch.float32)
    below = torch.nextafter(f32, torch.zeros_like(f32))
    above = torch.nextafter(f32, torch.ones_like(f32))[:-1]
    f64 = torch.from_numpy(_reference_bounds()[1])
    return torch.cat([f32.double(), below.double(), above.double(), f64])
