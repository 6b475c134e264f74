"""Paper A Table 4: ``MultiExitDistiller(branch_on_last_stage=True)`` builds the reference's
2- and 3-stage networks (``models/resnet_BYOT.py`` with ``num_resnet_blocks`` = 2 or 3): a
branch exit on every stage run, the last one included, keeping the 4-stage branch strides, and
the classifier on the last stage."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmkd.models.losses import (dmfl_loss, feature_hint_loss, kd_kl_div_loss,
                                soft_target_ce_loss)
from mmkd.registry import MODELS

NUM_CLASSES = 10
CONFIG = 'configs/self_distill/pskd-byot-dmfl_r18-{}stages_1xb128-300e_cifar100.py'


def build(num_stages, **kwargs):
    cfg = dict(type='MultiExitDistiller',
               backbone=dict(type='CIFARResNet', depth=18, num_stages=num_stages,
                             base_channels=8),
               num_classes=NUM_CLASSES, branch_on_last_stage=True,
               branch_strides=(8, 4, 2)[:num_stages])
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def batch(b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 32, 32, generator=g), dict(
        gt_label=torch.randint(0, NUM_CLASSES, (b, ), generator=g), sample_idx=torch.arange(b))


def exit_layout(model):
    """(in_channels, feat_channels, stride k, branch) of every exit, from its modules."""
    layout = []
    for head in model.exits:
        if head.branch_type == 'none':
            layout.append((head.fc.in_features, head.fc.in_features, 1, 'none'))
            continue
        first, kxk, last = head.branch[0], head.branch[3], head.branch[6]
        assert kxk.kernel_size == kxk.stride and first.out_channels == last.out_channels // 4
        assert head.fc.in_features == last.out_channels
        layout.append((first.in_channels, last.out_channels, kxk.kernel_size[0], 'bottleneck'))
    return layout


# The reference: bottleneck{s}_1 takes stage s (64 * 2**(s-1) channels) to dim_final_fea with a
# k x k stride-k conv, k = 8, 4, 2 for stages 1, 2, 3 whatever N; dim_final_fea is the channels
# of stage N (256 for N = 3, 128 for N = 2); fc sits on stage N's pooled map.
@pytest.mark.parametrize('stages,layout,maps', [
    (3, [(64, 256, 8, 'bottleneck'), (128, 256, 4, 'bottleneck'), (256, 256, 2, 'bottleneck'),
         (256, 256, 1, 'none')], [4, 4, 4, 8]),
    (2, [(64, 128, 8, 'bottleneck'), (128, 128, 4, 'bottleneck'), (128, 128, 1, 'none')],
     [4, 4, 16]),
])
def test_config_builds_the_reference_network(stages, layout, maps, epoch_info):
    cfg = Config.fromfile(CONFIG.format(stages))
    model = MODELS.build(cfg.model)
    assert model.num_stages == stages and model.num_exits == stages + 1
    assert exit_layout(model) == layout
    outs = model.extract_exits(torch.randn(2, 3, 32, 32))
    assert [o[2].shape[-1] for o in outs] == maps
    assert [tuple(o[0].shape) for o in outs] == [(2, 100)] * (stages + 1)


@pytest.mark.parametrize('stages,keys', [
    (3, {f'exit{i}.loss_{n}' for i in (1, 2, 3) for n in ('cls', 'kd', 'hint')}
     | {'exit1.loss_dmfl', 'exit2.loss_dmfl', 'exit4.loss_cls', 'pskd_alpha'}),
    (2, {f'exit{i}.loss_{n}' for i in (1, 2) for n in ('cls', 'kd', 'hint')}
     | {'exit1.loss_dmfl', 'exit3.loss_cls', 'pskd_alpha'}),
])
def test_config_loss_keys(stages, keys, epoch_info):
    # BYOT on every branch exit (the last stage's too), DMFL on the first N - 1 only.
    model = MODELS.build(Config.fromfile(CONFIG.format(stages)).model)
    model.pskd_memory.allocate(2)
    epoch_info(0, 300)
    x = torch.randn(2, 3, 32, 32)
    losses = model.loss(x, dict(gt_label=torch.tensor([1, 2]), sample_idx=torch.tensor([0, 1])))
    assert set(losses) == keys


@pytest.mark.parametrize('stages', [3, 2])
def test_losses_match_the_reference_assembly(stages):
    # PS-KD off (one-hot target). Reference: (1 + (1 - a)) CE_final, BYOT on branches
    # 1..N against the final logits / pooled final feature, DMFL mean over branches 1..N-1
    # against the pooled final feature (not against the last branch).
    model = build(stages, byot=dict(), dmfl=dict())
    x, samples = batch()
    losses = model.loss(x, samples)
    outs = model.extract_exits(x)
    (zf, ff, mf), y = outs[-1], F.one_hot(samples['gt_label'], NUM_CLASSES).float()
    expected = {f'exit{stages + 1}.loss_cls': 1.9 * soft_target_ce_loss(zf, y)}
    for i in range(1, stages + 1):
        z, f, m = outs[i - 1]
        expected[f'exit{i}.loss_cls'] = 0.9 * soft_target_ce_loss(z, y)
        expected[f'exit{i}.loss_kd'] = 0.1 * kd_kl_div_loss(z, zf, 3.0)
        expected[f'exit{i}.loss_hint'] = 1e-6 * feature_hint_loss(f, ff, 'sum')
        if i < stages:
            pooled = dmfl_loss(m.mean((2, 3), keepdim=True), mf.mean((2, 3), keepdim=True))
            expected[f'exit{i}.loss_dmfl'] = pooled / (stages - 1)
    assert set(losses) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(losses[key], value, msg=key)


def test_every_parameter_is_in_the_graph_without_byot():
    # DMFL alone leaves the last stage's branch without a loss; it still joins the graph with
    # weight 0 (DDP without find_unused_parameters) and learns nothing.
    model = build(3, dmfl=dict(legacy_no_grad=True))
    losses = model.loss(*batch())
    assert set(losses) == {'exit1.loss_dmfl', 'exit2.loss_dmfl', 'exit4.loss_cls'}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.exits[2].parameters())


def test_predict_reports_every_exit():
    model = build(2).eval()
    (out, ) = model.predict(*batch())
    assert list(out['probs']) == ['exit1', 'exit2', 'exit3', 'ensemble']
    torch.testing.assert_close(out['probs']['exit3'],
                               model.extract_exits(batch()[0])[-1][0].softmax(1))


@pytest.mark.parametrize('kwargs,match', [
    (dict(branch_strides=None), r'model.branch_on_last_stage=True needs model.branch_strides'),
    (dict(branch_strides=(8, 4)), r'model.branch_strides needs 3 positive ints'),
    (dict(dmfl=dict(mode='spatial')), r"model.dmfl.mode='spatial' .*model.branch_strides \[8, 4, 2\]"),
])
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(3, **kwargs)


def test_default_layout_is_unchanged():
    # Without the switch: exits 1..S-1 on stages 1..S-1 with strides 2**(S - s), exit S the
    # classifier (what the 4-stage paper rows build).
    model = build(4, branch_on_last_stage=False, branch_strides=None)
    assert exit_layout(model) == [(8, 64, 8, 'bottleneck'), (16, 64, 4, 'bottleneck'),
                                  (32, 64, 2, 'bottleneck'), (64, 64, 1, 'none')]
