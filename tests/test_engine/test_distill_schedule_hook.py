"""The distillation schedule: hand-computed ramp values, the hook on a runner, the factor
reaching the KD / ML terms, and build-time errors."""
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub

from mmkd.engine.hooks import DistillScheduleHook, distill_ramp
from mmkd.registry import MODELS


@pytest.mark.parametrize('t,ramp,expected', [
    (-1, 'linear', 0.0), (0, 'linear', 0.0), (0.5, 'linear', 0.25), (1, 'linear', 0.5),
    (1.5, 'linear', 0.75), (2, 'linear', 1.0), (7, 'linear', 1.0),
    (0, 'sigmoid', math.exp(-5)), (1, 'sigmoid', math.exp(-5 * 0.25)), (2, 'sigmoid', 1.0),
])
def test_ramp_values(t, ramp, expected):
    assert distill_ramp(t, 0, 2, ramp) == pytest.approx(expected, abs=1e-12)


def test_ramp_with_begin_and_off():
    assert distill_ramp(1.0, 1, 3) == 0.0
    assert distill_ramp(2.0, 1, 3) == 0.5
    assert distill_ramp(9.0, 1, 3, off_from=10) == 1.0
    assert distill_ramp(10.0, 1, 3, off_from=10) == 0.0


def fake_runner(model, it, iters_per_epoch=4):
    hub = MessageHub.get_instance('test_distill_schedule')
    return SimpleNamespace(model=model, iter=it, train_dataloader=[None] * iters_per_epoch,
                           train_loop=SimpleNamespace(max_epochs=5), message_hub=hub)


def test_hook_sets_and_logs_the_factor():
    model = SimpleNamespace(distill_factor=1.0)
    hook = DistillScheduleHook(ramp='linear', begin=0, end=2, by_epoch=True)
    runner = fake_runner(model, it=3)  # 3 of 4 iterations: t = 0.75 epochs
    hook.before_train(runner)
    hook.before_train_iter(runner, batch_idx=3)
    assert model.distill_factor == pytest.approx(0.375)
    assert runner.message_hub.get_scalar('train/distill_factor').current() == \
        pytest.approx(0.375)
    by_iter = DistillScheduleHook(begin=0, end=8, by_epoch=False)
    by_iter.before_train_iter(fake_runner(model, it=6), batch_idx=2)
    assert model.distill_factor == pytest.approx(0.75)


def test_factor_scales_the_kd_and_ml_terms():
    def tiny(w):
        return dict(type='ImageClassifier', num_classes=3, backbone=dict(
            type='CIFARResNet', depth=18, num_stages=2, base_channels=w))
    torch.manual_seed(0)
    model = MODELS.build(dict(type='KDMLDistiller', teacher=tiny(8), students=[tiny(4), tiny(4)]))
    x, labels = torch.randn(4, 3, 16, 16), dict(gt_label=torch.tensor([0, 1, 2, 0]))
    model.eval()  # same BN statistics in both passes
    full = model.loss(x, labels)
    model.distill_factor = 0.25
    ramped = model.loss(x, labels)
    for key in ('student0.loss_kd', 'student0.loss_ml', 'student1.loss_kd'):
        torch.testing.assert_close(ramped[key], 0.25 * full[key])
    torch.testing.assert_close(ramped['student0.loss_cls'], full['student0.loss_cls'])


def test_det_factor_scales_the_distillation_terms():
    from mmkd.testing import tiny_det_batch, tiny_det_distiller
    model = tiny_det_distiller()
    x, samples = tiny_det_batch()
    model.eval()
    full = model.loss(x, samples)
    model.distill_factor = 0.5
    ramped = model.loss(x, samples)
    for key in full:
        scale = 0.5 if ('_kd_' in key or '_ml_' in key) else 1.0
        torch.testing.assert_close(sum(ramped[key]) if isinstance(ramped[key], list)
                                   else ramped[key],
                                   scale * (sum(full[key]) if isinstance(full[key], list)
                                            else full[key]))


def test_errors_name_the_setting():
    with pytest.raises(ValueError, match="ramp must be one of"):
        DistillScheduleHook(ramp='cosine')
    with pytest.raises(ValueError, match='needs 0 <= begin < end'):
        DistillScheduleHook(begin=3, end=2)
    with pytest.raises(ValueError, match='off_from=1 is before end=2'):
        DistillScheduleHook(end=2, off_from=1)
    hook = DistillScheduleHook()
    with pytest.raises(TypeError, match='remove the hook from custom_hooks'):
        hook.before_train(fake_runner(SimpleNamespace(), it=0))
    runner = fake_runner(SimpleNamespace(distill_factor=1.0), it=0)
    runner.train_loop = SimpleNamespace()  # an iteration-based loop
    with pytest.raises(ValueError, match='set by_epoch=False'):
        hook.before_train(runner)
