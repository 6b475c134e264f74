"""The KD terms in fp32 under mixed precision: half-precision logits (what autocast leaves a
head's outputs) are upcast inside each loss, so the value equals the fp32 computation on the
same (rounded) logits, and differs from computing in half precision."""
import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses import (box_distance, box_kd_loss, kd_kl_div_loss, ld_kd_loss,
                                reverse_kd_kl_div_loss, sigmoid_kd_loss, soft_target_ce_loss)
from mmkd.models.losses.precision import upcast


def logits(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * 4).to(torch.bfloat16)


CASES = {
    'kd': lambda s, t: kd_kl_div_loss(s, t, 2.0),
    'reverse_kd': lambda s, t: reverse_kd_kl_div_loss(s, t, 2.0),
    'sigmoid_kd': lambda s, t: sigmoid_kd_loss(s, t, 1.0),
    'ld': lambda s, t: ld_kd_loss(s.reshape(8, 4, 5), t.reshape(8, 4, 5),
                                  torch.ones(8, dtype=s.dtype), 10.0),
    'soft_ce': lambda s, t: soft_target_ce_loss(s, t.float().softmax(1)),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_half_precision_logits_give_the_fp32_value_under_autocast(name):
    s, t = logits(8, 20, seed=1), logits(8, 20, seed=2)
    loss = CASES[name]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = loss(s, t)
    reference = loss(s.float(), t.float())  # fp32 on the same rounded logits
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, reference, rtol=1e-6, atol=1e-7)


def test_without_the_upcast_bf16_would_differ():
    # the fp32 path matters: the same KL in bf16 is off by far more than fp32 rounding
    s, t = logits(8, 20, seed=1), logits(8, 20, seed=2)
    bf16 = F.kl_div(F.log_softmax(s / 2, 1), F.log_softmax(t / 2, 1), reduction='batchmean',
                    log_target=True) * 4
    assert abs(bf16.float() - kd_kl_div_loss(s, t, 2.0)) > 1e-3


def test_box_kd_in_fp32():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(16, 2, generator=g)
    boxes = torch.cat([a, a + 0.3], 1).to(torch.float16)
    target = (boxes.float() + 0.01).to(torch.float16)
    w = torch.rand(16, generator=g).to(torch.float16)
    out = box_kd_loss(boxes, target, w)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, box_kd_loss(boxes.float(), target.float(), w.float()))
    # the single-box distiller's KD / ML terms use box_distance directly
    per_box = box_distance(boxes, target)
    assert per_box.dtype == torch.float32
    torch.testing.assert_close(per_box, box_distance(boxes.float(), target.float()))


def test_upcast_keeps_fp32_and_fp64():
    for dtype in (torch.float32, torch.float64):
        x = torch.ones(2, dtype=dtype)
        assert upcast(x) is x
    assert upcast(torch.ones(2, dtype=torch.float16)).dtype == torch.float32
