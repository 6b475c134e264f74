import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses import (dmfl_loss, feature_hint_loss, kd_kl_div_loss, one_hot_probs,
                                soft_target_ce_loss)

LN3 = math.log(3.0)


def _leaf(rows, dtype=torch.float64):
    return torch.tensor(rows, dtype=dtype, requires_grad=True)


def _randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(True)


def _kl_ref(student, teacher, temperature):
    """The textbook KD term: F.kl_div on probabilities, batchmean, times T**2."""
    return F.kl_div(F.log_softmax(student / temperature, dim=1),
                    F.softmax(teacher / temperature, dim=1),
                    reduction='batchmean') * temperature**2


class TestSoftTargetCELoss:

    def test_hand_computed_two_class(self):
        # row 0: softmax([0, ln3]) = [1/4, 3/4]; target [.5, .5]
        #   -.5*ln(.25) - .5*ln(.75) = .5*(1.386294 + 0.287682) = 0.836988
        # row 1: softmax([0, 0]) = [.5, .5]; target [1, 0] -> -ln(.5) = 0.693147
        # mean over the batch: (0.836988 + 0.693147) / 2 = 0.765068
        logits = _leaf([[0.0, LN3], [0.0, 0.0]])
        target = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
        loss = soft_target_ce_loss(logits, target)
        assert loss.dim() == 0
        assert loss.item() == pytest.approx(0.765068, abs=1e-6)

    def test_equals_cross_entropy_for_one_hot_targets(self):
        logits = _randn(5, 7)
        labels = torch.tensor([0, 6, 3, 3, 1])
        loss = soft_target_ce_loss(logits, one_hot_probs(labels, 7, torch.float64))
        torch.testing.assert_close(loss, F.cross_entropy(logits, labels))

    def test_one_hot_probs(self):
        probs = one_hot_probs(torch.tensor([2, 0]), 3)
        assert probs.dtype == torch.float32
        assert probs.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]

    def test_gradient_reaches_logits_not_target(self):
        logits = _leaf([[0.0, LN3]])
        target = _leaf([[0.5, 0.5]])
        soft_target_ce_loss(logits, target).backward()
        # d/dz = softmax(z) - q = [.25 - .5, .75 - .5] (B = 1)
        torch.testing.assert_close(logits.grad,
                                   torch.tensor([[-0.25, 0.25]], dtype=torch.float64))
        assert target.grad is None

    def test_shape_mismatch_raises(self):
        with pytest.raises(ValueError, match=r'logits \(2, 3\) and target_probs \(2, 4\)'):
            soft_target_ce_loss(torch.zeros(2, 3), torch.zeros(2, 4))


class TestKDKLDivLoss:

    def test_zero_when_student_equals_teacher(self):
        logits = _randn(4, 10)
        for temperature in (1.0, 3.0):
            loss = kd_kl_div_loss(logits, logits.detach().clone(), temperature)
            assert loss.item() == 0.0

    def test_hand_computed_two_class_with_temperature(self):
        # T = 2: student [0, 2 ln3] / 2 = [0, ln3] -> p = [1/4, 3/4]; teacher [0, 0] -> q = [.5, .5]
        # KL(q || p) = .5 ln(.5/.25) + .5 ln(.5/.75) = .5 ln(4/3) = 0.143841
        # times T^2 = 4: 0.575364
        student = _leaf([[0.0, 2 * LN3]])
        teacher = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
        loss = kd_kl_div_loss(student, teacher, temperature=2.0)
        assert loss.item() == pytest.approx(0.575364, abs=1e-6)
        loss.backward()
        # dL/ds = T^2 * (1/T) * (p - q) / B = 2 * [-.25, .25] = [-.5, .5]
        torch.testing.assert_close(student.grad,
                                   torch.tensor([[-0.5, 0.5]], dtype=torch.float64))

    @pytest.mark.parametrize('temperature', [1.0, 2.0, 4.0])
    def test_equals_textbook_kl_div(self, temperature):
        student, teacher = _randn(6, 5, seed=1), _randn(6, 5, seed=2)
        torch.testing.assert_close(kd_kl_div_loss(student, teacher, temperature),
                                   _kl_ref(student, teacher, temperature))

    def test_gradient_reaches_student_not_teacher(self):
        student, teacher = _randn(3, 4, seed=1), _randn(3, 4, seed=2)
        kd_kl_div_loss(student, teacher, 3.0).backward()
        assert student.grad is not None and student.grad.abs().sum() > 0
        assert teacher.grad is None

    def test_gradient_reaches_teacher_without_detach(self):
        student, teacher = _randn(3, 4, seed=1), _randn(3, 4, seed=2)
        kd_kl_div_loss(student, teacher, 3.0, detach_target=False).backward()
        assert student.grad.abs().sum() > 0
        assert teacher.grad is not None and teacher.grad.abs().sum() > 0
        # same value as the detached version
        torch.testing.assert_close(
            kd_kl_div_loss(student, teacher, 3.0, detach_target=False),
            kd_kl_div_loss(student, teacher, 3.0))

    @pytest.mark.parametrize('temperature', [0.0, -1.0])
    def test_non_positive_temperature_raises(self, temperature):
        with pytest.raises(ValueError, match='temperature must be > 0'):
            kd_kl_div_loss(torch.zeros(1, 2), torch.zeros(1, 2), temperature)

    def test_shape_mismatch_raises(self):
        with pytest.raises(ValueError, match='student_logits .* teacher_logits'):
            kd_kl_div_loss(torch.zeros(2, 3), torch.zeros(3, 3))


class TestFeatureHintLoss:
    # diffs = feat - target = [[1, 2], [2, 3]]; squares 1 + 4 + 4 + 9 = 18

    FEAT = [[1.0, 2.0], [3.0, 4.0]]
    TARGET = [[0.0, 0.0], [1.0, 1.0]]

    def test_sum_reduction_by_hand(self):
        loss = feature_hint_loss(_leaf(self.FEAT), _leaf(self.TARGET), reduction='sum')
        assert loss.item() == pytest.approx(18.0)

    def test_mean_reduction_divides_by_batch(self):
        # 18 / B = 18 / 2 = 9
        loss = feature_hint_loss(_leaf(self.FEAT), _leaf(self.TARGET), reduction='mean')
        assert loss.item() == pytest.approx(9.0)

    def test_default_reduction_is_sum(self):
        assert feature_hint_loss(_leaf(self.FEAT), _leaf(self.TARGET)).item() == 18.0

    def test_gradient_only_to_feat(self):
        feat, target = _leaf(self.FEAT), _leaf(self.TARGET)
        feature_hint_loss(feat, target).backward()
        # d/dF sum (F - T)^2 = 2 (F - T) = [[2, 4], [4, 6]]
        torch.testing.assert_close(feat.grad,
                                   torch.tensor([[2.0, 4.0], [4.0, 6.0]], dtype=torch.float64))
        assert target.grad is None

    def test_bad_reduction_raises(self):
        with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean', got 'none'"):
            feature_hint_loss(torch.zeros(2, 3), torch.zeros(2, 3), reduction='none')

    def test_shape_mismatch_raises(self):
        with pytest.raises(ValueError, match='feat .* and target_feat'):
            feature_hint_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def _spatial_ref(a, b, temperature):
    """Both directions of the per-channel softmax over H*W, mean over B*C, times T**2."""
    bsz, ch = a.shape[:2]
    la = F.log_softmax(a.flatten(2) / temperature, dim=2)
    lb = F.log_softmax(b.flatten(2) / temperature, dim=2)
    kl_ab = F.kl_div(la, lb.exp(), reduction='sum')  # KL(P_b || P_a)
    kl_ba = F.kl_div(lb, la.exp(), reduction='sum')  # KL(P_a || P_b)
    return (kl_ab + kl_ba) / (bsz * ch) * temperature**2


class TestDMFLLoss:

    @staticmethod
    def _hand_maps():
        # B = 1, C = 2, 2x2 maps. Channel means: feat [0, (0 + 2ln3 + ln3 + ln3)/4] = [0, ln3]
        # (max pooling would give [0, 2 ln3]); target [0, 0].
        feat = _leaf([[[[0.0, 0.0], [0.0, 0.0]], [[0.0, 2 * LN3], [LN3, LN3]]]])
        target = _leaf([[[[1.0, -1.0], [2.0, -2.0]], [[0.0, 0.0], [0.0, 0.0]]]])
        return feat, target

    def test_channel_mode_hand_computed(self):
        # P_i = softmax([0, ln3]) = [.25, .75], P_N = softmax([0, 0]) = [.5, .5]
        # KL(P_N || P_i) = .5 ln(.5/.25) + .5 ln(.5/.75) = .5 ln(4/3)          = 0.143841
        # KL(P_i || P_N) = .25 ln(.25/.5) + .75 ln(.75/.5) = -0.173287 + 0.304099 = 0.130812
        # sum = 0.274653
        feat, target = self._hand_maps()
        loss = dmfl_loss(feat, target)
        assert loss.item() == pytest.approx(0.274653, abs=1e-6)

    @pytest.mark.parametrize('temperature', [1.0, 2.0])
    def test_channel_mode_equals_symmetric_kl_of_pooled_maps(self, temperature):
        feat, target = _randn(3, 5, 4, 4, seed=1), _randn(3, 5, 4, 4, seed=2)
        pf, pt = feat.mean((2, 3)), target.mean((2, 3))
        expected = _kl_ref(pf, pt, temperature) + _kl_ref(pt, pf, temperature)
        torch.testing.assert_close(dmfl_loss(feat, target, temperature), expected)

    def test_gradient_reaches_both_inputs(self):
        # The reference DMFL built its value with torch.tensor(list): zero gradient. Here each
        # direction moves its own predicting side, so both maps receive a gradient.
        feat, target = _randn(2, 4, 3, 3, seed=1), _randn(2, 4, 3, 3, seed=2)
        loss = dmfl_loss(feat, target, detach_target=True)
        assert loss.requires_grad
        loss.backward()
        assert feat.grad is not None and feat.grad.abs().sum() > 0
        assert target.grad is not None and target.grad.abs().sum() > 0

    def test_each_direction_moves_only_its_predicting_side(self):
        feat, target = _randn(2, 4, 3, 3, seed=1), _randn(2, 4, 3, 3, seed=2)
        dmfl_loss(feat, target, temperature=2.0).backward()
        # with detach_target the feat gradient comes only from KL(sg P_N || P_i)
        f2 = feat.detach().clone().requires_grad_(True)
        kd_kl_div_loss(f2.mean((2, 3)), target.detach().mean((2, 3)), 2.0).backward()
        torch.testing.assert_close(feat.grad, f2.grad)
        # and the target gradient only from KL(sg P_i || P_N)
        t2 = target.detach().clone().requires_grad_(True)
        kd_kl_div_loss(t2.mean((2, 3)), feat.detach().mean((2, 3)), 2.0).backward()
        torch.testing.assert_close(target.grad, t2.grad)

    def test_no_detach_gives_full_symmetric_gradient(self):
        feat, target = _randn(2, 4, 3, 3, seed=1), _randn(2, 4, 3, 3, seed=2)
        dmfl_loss(feat, target, detach_target=False).backward()
        f2 = feat.detach().clone().requires_grad_(True)
        kd_kl_div_loss(f2.mean((2, 3)), target.detach().mean((2, 3))).backward()
        # the second direction adds a term, so the gradient differs from the one-sided one
        assert not torch.allclose(feat.grad, f2.grad)

    def test_legacy_no_grad_same_value_without_gradient(self):
        feat, target = _randn(2, 4, 3, 3, seed=1), _randn(2, 4, 3, 3, seed=2)
        legacy = dmfl_loss(feat, target, legacy_no_grad=True)
        fixed = dmfl_loss(feat, target)
        assert legacy.item() == fixed.item() and legacy.item() > 0
        assert not legacy.requires_grad
        with pytest.raises(RuntimeError):
            legacy.backward()
        assert feat.grad is None and target.grad is None

    def test_spatial_mode_hand_computed(self):
        # B = 1, C = 2, H = 1, W = 2. Channel 0: feat [0, ln3] -> [.25, .75], target [0, 0] ->
        # [.5, .5]: KL both ways = 0.143841 + 0.130812 = 0.274653 (as in the channel case).
        # Channel 1 equal in both maps: 0. Mean over B*C = 2: 0.274653 / 2 = 0.137327
        feat = _leaf([[[[0.0, LN3]], [[5.0, 1.0]]]])
        target = _leaf([[[[0.0, 0.0]], [[5.0, 1.0]]]])
        loss = dmfl_loss(feat, target, mode='spatial')
        assert loss.item() == pytest.approx(0.137327, abs=1e-6)

    @pytest.mark.parametrize('temperature', [1.0, 2.0])
    def test_spatial_mode_equals_reference(self, temperature):
        feat, target = _randn(3, 5, 4, 4, seed=1), _randn(3, 5, 4, 4, seed=2)
        loss = dmfl_loss(feat, target, temperature, mode='spatial')
        torch.testing.assert_close(loss, _spatial_ref(feat, target, temperature))
        loss.backward()
        assert feat.grad.abs().sum() > 0 and target.grad.abs().sum() > 0

    @pytest.mark.parametrize('mode', ['channel', 'spatial'])
    def test_zero_when_maps_equal(self, mode):
        feat = _randn(2, 3, 4, 4)
        assert dmfl_loss(feat, feat.detach().clone(), 2.0, mode=mode).item() == 0.0

    def test_bad_mode_raises(self):
        with pytest.raises(ValueError, match="mode must be 'channel' or 'spatial', got 'pixel'"):
            dmfl_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2), mode='pixel')

    def test_shape_mismatch_raises(self):
        with pytest.raises(ValueError, match='feat_map .* and target_feat_map'):
            dmfl_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 2, 2))
