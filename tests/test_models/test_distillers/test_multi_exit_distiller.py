import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses import (dmfl_loss, feature_hint_loss, kd_kl_div_loss,
                                soft_target_ce_loss)
from mmkd.registry import MODELS

NUM_CLASSES = 10


def build(**kwargs):
    cfg = dict(type='MultiExitDistiller',
               backbone=dict(type='CIFARResNet', depth=18, num_stages=4, base_channels=8),
               num_classes=NUM_CLASSES)
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def batch(b=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, 32, 32, generator=g)
    samples = dict(gt_label=torch.randint(0, NUM_CLASSES, (b, ), generator=g),
                   sample_idx=torch.arange(b) * 2)
    return x, samples


def onehot(labels):
    return F.one_hot(labels, NUM_CLASSES).float()


class TestMultiExitDistiller:

    @pytest.mark.parametrize('kwargs,keys', [
        (dict(), {'exit4.loss_cls'}),
        (dict(byot=dict()), {'exit4.loss_cls'} | {f'exit{i}.loss_{n}' for i in (1, 2, 3)
                                                  for n in ('cls', 'kd', 'hint')}),
        (dict(byot=dict(exits=(2, 3))), {'exit4.loss_cls'} | {
            f'exit{i}.loss_{n}' for i in (2, 3) for n in ('cls', 'kd', 'hint')}),
        (dict(dmfl=dict()), {'exit4.loss_cls', 'exit1.loss_dmfl', 'exit2.loss_dmfl',
                             'exit3.loss_dmfl'}),
        (dict(pskd=dict()), {'exit4.loss_cls', 'pskd_alpha'}),
    ])
    def test_loss_keys(self, kwargs, keys, epoch_info):
        epoch_info(0, 10)
        model = build(**kwargs)
        if model.pskd is not None:
            model.pskd_memory.allocate(20)
        assert set(model.loss(*batch())) == keys

    def test_full_total_matches_formula(self, epoch_info):
        # PS-KD off so that the target is one-hot; BYOT and DMFL at their defaults.
        epoch_info(0, 10)
        model = build(byot=dict(), dmfl=dict())
        x, samples = batch()
        losses = model.loss(x, samples)
        outs = model.extract_exits(x)
        (z4, f4, m4), y = outs[3], onehot(samples['gt_label'])
        # CE weight of the final exit: 1 + (1 - alpha) = 1.9
        expected = {'exit4.loss_cls': 1.9 * soft_target_ce_loss(z4, y)}
        for i in (1, 2, 3):
            z, f, m = outs[i - 1]
            expected[f'exit{i}.loss_cls'] = 0.9 * soft_target_ce_loss(z, y)
            expected[f'exit{i}.loss_kd'] = 0.1 * kd_kl_div_loss(z, z4, 3.0)
            expected[f'exit{i}.loss_hint'] = 1e-6 * feature_hint_loss(f, f4, 'sum')
            expected[f'exit{i}.loss_dmfl'] = 1 / 3 * dmfl_loss(m, m4)
        assert set(losses) == set(expected)
        for key, value in expected.items():
            torch.testing.assert_close(losses[key], value, msg=key)

    def test_plain_final_weight_one_and_idle_exits_get_zero_grad(self):
        model = build()
        x, samples = batch()
        loss = model.loss(x, samples)['exit4.loss_cls']
        z4 = model.extract_exits(x)[3][0]
        torch.testing.assert_close(loss, F.cross_entropy(z4, samples['gt_label']))
        loss.backward()
        # Idle exits are in the graph (DDP sees every parameter) but learn nothing.
        for i in range(3):
            for p in model.exits[i].parameters():
                assert p.grad is not None and torch.count_nonzero(p.grad) == 0
        assert torch.count_nonzero(model.exits[3].fc.weight.grad) > 0

    def test_dmfl_sends_gradient_to_shallow_exit(self):
        model = build(dmfl=dict())
        model.loss(*batch())['exit1.loss_dmfl'].backward()
        branch_grads = [p.grad for p in model.exits[0].parameters() if p.grad is not None]
        assert any(torch.count_nonzero(g) for g in branch_grads)
        assert torch.count_nonzero(model.backbone.layer1[0].conv1.weight.grad) > 0

    def test_dmfl_legacy_no_grad_sends_none(self):
        model = build(dmfl=dict(legacy_no_grad=True))
        loss = model.loss(*batch())['exit1.loss_dmfl']
        assert not loss.requires_grad and loss > 0

    def test_byot_kd_does_not_reach_the_deepest_exit(self):
        model = build(byot=dict())
        model.loss(*batch())['exit1.loss_kd'].backward()
        assert model.exits[3].fc.weight.grad is None
        assert torch.count_nonzero(model.exits[0].fc.weight.grad) > 0

    def test_pskd_epoch0_is_one_hot_and_memory_takes_this_forward(self, epoch_info):
        epoch_info(0, 10)
        model = build(pskd=dict(alpha_t=0.8))
        model.pskd_memory.allocate(20)
        model.pskd_memory.rows.fill_(0.1)  # must be ignored in epoch 0
        x, samples = batch()
        losses = model.loss(x, samples)
        z4 = model.extract_exits(x)[3][0]
        torch.testing.assert_close(losses['exit4.loss_cls'],
                                   F.cross_entropy(z4, samples['gt_label']))
        # alpha_0 = 0.8 * (0 + 1) / 10 is logged even though the target is one-hot
        assert losses['pskd_alpha'].item() == pytest.approx(0.08)
        torch.testing.assert_close(model.pskd_memory.rows[samples['sample_idx']],
                                   z4.detach().softmax(1))
        untouched = torch.ones(20, dtype=torch.bool)
        untouched[samples['sample_idx']] = False
        assert torch.all(model.pskd_memory.rows[untouched] == 0.1)

    def test_pskd_reads_previous_rows_before_writing(self, epoch_info):
        epoch_info(1, 10)  # alpha_1 = 0.8 * 2 / 10 = 0.16
        model = build(pskd=dict(alpha_t=0.8))
        model.pskd_memory.allocate(20)
        previous = torch.softmax(torch.randn(20, NUM_CLASSES), 1)
        model.pskd_memory.rows.copy_(previous)
        x, samples = batch()
        idx = samples['sample_idx']
        losses = model.loss(x, samples)
        z4 = model.extract_exits(x)[3][0]
        target = 0.84 * onehot(samples['gt_label']) + 0.16 * previous[idx]
        torch.testing.assert_close(losses['exit4.loss_cls'], soft_target_ce_loss(z4, target))
        torch.testing.assert_close(model.pskd_memory.rows[idx], z4.detach().softmax(1))
        assert losses['pskd_alpha'].item() == pytest.approx(0.16)

    def test_pskd_alpha_reaches_alpha_t_in_last_epoch(self, epoch_info):
        epoch_info(299, 300)
        assert build(pskd=dict(alpha_t=0.8)).pskd_schedule() == (299, pytest.approx(0.8))

    def test_pskd_needs_epoch_info(self):
        model = build(pskd=dict())
        model.pskd_memory.allocate(20)
        with pytest.raises(RuntimeError, match='max_epochs'):
            model.loss(*batch())

    def test_float16_memory(self, epoch_info):
        epoch_info(0, 10)
        model = build(pskd=dict(memory_dtype='float16'))
        model.pskd_memory.allocate(20)
        model.loss(*batch())
        assert model.pskd_memory.rows.dtype == torch.float16
        assert model.pskd_memory.rows.element_size() * NUM_CLASSES == 20  # bytes per sample

    def test_predict_returns_every_exit_and_mean_ensemble(self):
        model = build().eval()
        x, samples = batch()
        (out, ) = model.predict(x, samples)
        assert list(out['probs']) == ['exit1', 'exit2', 'exit3', 'exit4', 'ensemble']
        stacked = torch.stack([out['probs'][f'exit{i}'] for i in (1, 2, 3, 4)])
        torch.testing.assert_close(out['probs']['ensemble'], stacked.mean(0))
        torch.testing.assert_close(out['probs']['exit4'], model(x)[3].softmax(1))
        assert torch.equal(out['sample_idx'], samples['sample_idx'])

    def test_num_stages_sets_exits(self):
        model = build(backbone=dict(type='CIFARResNet', depth=18, num_stages=2,
                                    base_channels=8), byot=dict())
        assert model.num_exits == 2
        assert set(model.loss(*batch())) == {'exit2.loss_cls', 'exit1.loss_cls',
                                             'exit1.loss_kd', 'exit1.loss_hint'}

    @pytest.mark.parametrize('kwargs,match', [
        (dict(byot=dict(exits=(4, ))), 'model.byot.exits'),
        (dict(byot=dict(exits=(0, ))), 'model.byot.exits'),
        (dict(dmfl=dict(wieght=1.0)), r"model.dmfl has unknown keys \['wieght'\]"),
        (dict(pskd=dict(memory_dtype='int8')), 'model.pskd.memory_dtype'),
    ])
    def test_bad_config_raises(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            build(**kwargs)
