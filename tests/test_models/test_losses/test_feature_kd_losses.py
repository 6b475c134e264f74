"""PKD and CWD feature distillation losses against hand-computed values."""
import math

import pytest
import torch

from mmkd.models.losses import cwd_loss, pkd_loss, standardize_channels


def maps(*channels):
    """(1, C, 1, W) feature map from C lists of W values."""
    return torch.tensor(channels, dtype=torch.float64)[None, :, None, :]


class TestPKDLoss:

    def test_standardize_channels_over_batch_and_positions(self):
        x = torch.randn(3, 4, 5, 6, dtype=torch.float64) * 7 + 2
        z = standardize_channels(x, eps=0)
        torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(4, dtype=torch.float64))
        torch.testing.assert_close(z.var((0, 2, 3), unbiased=False),
                                   torch.ones(4, dtype=torch.float64))

    def test_hand_value_is_one_minus_pearson(self):
        # s = [0, 1, 2], t = [0, 0, 3]: cov = ((-1)(-1) + 0 + (1)(2)) / 3 = 1,
        # σ_s = sqrt(2/3), σ_t = sqrt(2), r = 1 / sqrt(4/3) = sqrt(3)/2 = 0.866025,
        # L = 1 − r = 0.133975
        s, t = maps([0, 1, 2]), maps([0, 0, 3])
        assert pkd_loss(s, t, eps=0).item() == pytest.approx(1 - math.sqrt(3) / 2, abs=1e-12)
        # a second, anti-correlated channel (r = −1, 1 − r = 2): the mean over channels
        s2, t2 = maps([0, 1, 2], [1, 3, 5]), maps([0, 0, 3], [2, 1, 0])
        assert pkd_loss(s2, t2, eps=0).item() == pytest.approx(
            ((1 - math.sqrt(3) / 2) + 2) / 2, abs=1e-12)

    def test_magnitude_and_offset_free(self):
        t = torch.randn(2, 3, 4, 4, dtype=torch.float64)
        assert pkd_loss(5 * t + 3, t).item() == pytest.approx(0, abs=1e-9)
        assert pkd_loss(-t, t, eps=0).item() == pytest.approx(2, abs=1e-9)

    def test_equals_mse_of_standardised_over_two(self):
        s, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
        expected = torch.nn.functional.mse_loss(standardize_channels(s),
                                                standardize_channels(t)) / 2
        torch.testing.assert_close(pkd_loss(s, t), expected)

    def test_gradient_only_to_student(self):
        s = torch.randn(2, 3, 4, 4, requires_grad=True)
        t = torch.randn(2, 3, 4, 4, requires_grad=True)
        pkd_loss(s, t).backward()
        assert t.grad is None and torch.count_nonzero(s.grad) > 0

    def test_shape_mismatch_raises(self):
        with pytest.raises(ValueError, match='same shape|one shape'):
            pkd_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, 3))

    def test_half_inputs_computed_in_fp32(self):
        s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
        assert pkd_loss(s.bfloat16(), t.bfloat16()).dtype == torch.float32


class TestCWDLoss:

    def test_hand_value(self):
        # teacher [0, 0] -> q = [1/2, 1/2]; student [ln 3, 0] -> p = [3/4, 1/4]
        # KL(q ‖ p) = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.143841
        s, t = maps([math.log(3), 0]), maps([0, 0])
        expected = 0.5 * math.log(2 / 3) + 0.5 * math.log(2)
        assert cwd_loss(s, t).item() == pytest.approx(expected, abs=1e-12)
        # T = 2: p = softmax([ln 3 / 2, 0]) = [sqrt3/(1+sqrt3), 1/(1+sqrt3)], times T² = 4
        p0, p1 = math.sqrt(3) / (1 + math.sqrt(3)), 1 / (1 + math.sqrt(3))
        expected_t2 = 4 * (0.5 * math.log(0.5 / p0) + 0.5 * math.log(0.5 / p1))
        assert cwd_loss(s, t, temperature=2.0).item() == pytest.approx(expected_t2, abs=1e-12)
        # a second channel that agrees: averaged over channels, the loss halves
        s2, t2 = maps([math.log(3), 0], [1, 2]), maps([0, 0], [1, 2])
        assert cwd_loss(s2, t2).item() == pytest.approx(expected / 2, abs=1e-12)
        # a second image that agrees: averaged over images too
        s3, t3 = torch.cat([s, t]), torch.cat([t, t])
        assert cwd_loss(s3, t3).item() == pytest.approx(expected / 2, abs=1e-12)

    def test_zero_at_agreement_and_shift_free(self):
        t = torch.randn(2, 3, 4, 4, dtype=torch.float64)
        assert cwd_loss(t.clone(), t).item() == pytest.approx(0, abs=1e-12)
        # the spatial softmax of a channel ignores a constant added to it
        assert cwd_loss(t + torch.randn(2, 3, 1, 1, dtype=torch.float64), t).item() == \
            pytest.approx(0, abs=1e-12)

    def test_equals_kl_div_of_spatial_softmax(self):
        s, t, temp = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5), 4.0
        log_p = torch.log_softmax(s.flatten(2) / temp, -1).flatten(0, 1)
        q = torch.softmax(t.flatten(2) / temp, -1).flatten(0, 1)
        expected = torch.nn.functional.kl_div(log_p, q, reduction='batchmean') * temp**2
        torch.testing.assert_close(cwd_loss(s, t, temp), expected)

    def test_gradient_only_to_student(self):
        s = torch.randn(2, 3, 4, 4, requires_grad=True)
        t = torch.randn(2, 3, 4, 4, requires_grad=True)
        cwd_loss(s, t, 2.0).backward()
        assert t.grad is None and torch.count_nonzero(s.grad) > 0

    def test_bad_temperature_raises(self):
        with pytest.raises(ValueError, match='temperature must be > 0'):
            cwd_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 0.0)
