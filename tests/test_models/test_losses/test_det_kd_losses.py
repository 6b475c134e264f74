"""Detection KD losses against hand-computed values."""
import math

import pytest
import torch

from mmkd.models.losses import box_distance, box_kd_loss, ld_kd_loss, sigmoid_kd_loss


class TestSigmoidKDLoss:

    def test_zero_at_agreement(self):
        z = torch.randn(5, 3)
        assert sigmoid_kd_loss(z, z.clone()).abs() < 1e-6

    def test_hand_value(self):
        # one location, one class: q = sigmoid(0) = 0.5, p = sigmoid(ln 3) = 0.75
        # KL_bin = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.5 ln(2/3) + 0.5 ln 2 = 0.143841
        s, t = torch.tensor([[math.log(3)]]), torch.tensor([[0.0]])
        expected = 0.5 * math.log(2 / 3) + 0.5 * math.log(2)
        assert sigmoid_kd_loss(s, t).item() == pytest.approx(expected, abs=1e-6)
        # T = 2 halves the logits and multiplies by T^2 = 4: p = sigmoid(ln 3 / 2) = 0.633975
        p = 1 / (1 + 1 / math.sqrt(3))
        expected_t2 = 4 * (0.5 * math.log(0.5 / p) + 0.5 * math.log(0.5 / (1 - p)))
        assert sigmoid_kd_loss(s, t, 2.0).item() == pytest.approx(expected_t2, abs=1e-6)

    def test_weights_and_gradient_only_to_student(self):
        s = torch.tensor([[1.0], [-1.0]], requires_grad=True)
        t = torch.tensor([[0.0], [0.0]], requires_grad=True)
        w = torch.tensor([1.0, 0.0])
        loss = sigmoid_kd_loss(s, t, weight=w)
        # only the first location counts: the value equals its unweighted loss
        assert loss.item() == pytest.approx(sigmoid_kd_loss(s[:1], t[:1]).item(), abs=1e-6)
        loss.backward()
        assert t.grad is None and s.grad[1].item() == 0 and s.grad[0].item() > 0


class TestBoxKDLoss:

    def test_box_distance_hand_value(self):
        a = torch.tensor([[0., 0., 2., 2.]])
        b = torch.tensor([[1., 1., 3., 3.]])
        # L1 = 4; IoU = 1/7; enclosing box area 9, union 7: GIoU = 1/7 - 2/9
        giou = 1 / 7 - 2 / 9
        assert box_distance(a, b).item() == pytest.approx(4 + 1 - giou, abs=1e-6)
        assert box_distance(a, a).item() == pytest.approx(0, abs=1e-6)

    def test_confidence_weighted_mean(self):
        s = torch.tensor([[0., 0., .5, .5], [0., 0., .5, .5]], requires_grad=True)
        t = torch.tensor([[0., 0., .5, .5], [.5, .5, 1., 1.]], requires_grad=True)
        w = torch.tensor([0.75, 0.25])
        # location 1 agrees (0); location 2: L1 = 2.0, disjoint boxes: IoU 0, enclosing 1,
        # union 0.5 -> GIoU = -0.5; D = 5 * 2 + 2 * 1.5 = 13; weighted mean = 0.25 * 13 / 1
        loss = box_kd_loss(s, t, w)
        assert loss.item() == pytest.approx(3.25, abs=1e-5)
        loss.backward()
        assert t.grad is None and s.grad.abs().sum() > 0


class TestLDKDLoss:

    def test_hand_value_and_zero(self):
        s = torch.zeros(1, 4, 2)  # uniform over 2 bins
        t = torch.zeros(1, 4, 2)
        t[0, :, 0] = 10 * math.log(3)  # at T = 10: softmax(t / 10) = [0.75, 0.25]
        # per side KL([.75, .25] || [.5, .5]) = .75 ln 1.5 + .25 ln .5; 4 sides; x T^2 = 100
        per_side = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
        loss = ld_kd_loss(s, t, torch.ones(1), temperature=10.0)
        assert loss.item() == pytest.approx(100 * 4 * per_side, rel=1e-5)
        assert ld_kd_loss(t, t, torch.ones(1)).abs() < 1e-5
