"""The two speed-ups of the multi-exit step (issue 14) change no value: the patch-GEMM
bottleneck branch (``ExitHead.patch_gemm_min_stride``) and the forward-only exits
(``MultiExitDistiller.exits_without_gradient``).

The reference is the implementation before them, obtained by switching both off: every
branch runs its modules, every exit runs with gradient, the idle ones with weight 0. In
float64 logits, losses, every gradient and every BN buffer must agree to 1e-10 (relative);
in float32 the losses and logits to 1e-5, and every gradient must be at least as close to
the float64 truth as the reference's (float32 BatchNorm over 32x32 maps is itself only
good to ~1e-3 in the input gradient, so "equal to the old float32 gradient" cannot be
asked of any re-implementation).
"""
import copy
from unittest import mock

import pytest
import torch

from mmkd.models.distillers import MultiExitDistiller
from mmkd.models.heads import ExitHead
from mmkd.registry import MODELS

NUM_CLASSES = 10
METHODS = {
    'baseline': dict(),
    'pskd-byot-dmflgrad': dict(pskd=dict(), byot=dict(), dmfl=dict()),
    'dmfl-legacy': dict(dmfl=dict(legacy_no_grad=True)),
    'byot3-dmflgrad': dict(byot=dict(exits=(3, )), dmfl=dict()),
    'byot23': dict(byot=dict(exits=(2, 3))),
}


def build(method, dtype):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiExitDistiller', num_classes=NUM_CLASSES,
        backbone=dict(type='CIFARResNet', depth=18, num_stages=4, base_channels=16),
        **METHODS[method]))
    model.init_weights()
    for m in model.modules():  # BN affine parameters away from (1, 0), a momentum that shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
            m.momentum = 0.3
    if model.pskd is not None:
        model.pskd_memory.allocate(32)
        model.pskd_memory.update(torch.arange(8) * 2, torch.rand(8, NUM_CLASSES).softmax(1))
    return model.to(dtype)


def batch(dtype):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(8, 3, 32, 32, generator=g).to(dtype),
            dict(gt_label=torch.randint(0, NUM_CLASSES, (8, ), generator=g),
                 sample_idx=torch.arange(8) * 2))


def reference_paths():
    """Both speed-ups off: the implementation before issue 14."""
    return [mock.patch.object(ExitHead, 'patch_gemm_min_stride', 0),
            mock.patch.object(MultiExitDistiller, 'exits_without_gradient', lambda self: set())]


def step(model, dtype, reference=False):
    """One loss + backward, then eval-mode logits: (losses, grads, buffers, eval logits)."""
    patches = reference_paths() if reference else []
    for p in patches:
        p.start()
    try:
        model.train()
        inputs, samples = batch(dtype)
        losses = model.loss(inputs, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        buffers = {n: b.clone() for n, b in model.named_buffers() if 'pskd' not in n}
        model.eval()
        with torch.no_grad():
            logits = model(inputs, mode='tensor')
    finally:
        for p in patches:
            p.stop()
    return ({k: v.detach() for k, v in losses.items()}, grads, buffers, logits)


def max_rel(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-30))


@pytest.mark.parametrize('method', list(METHODS))
def test_float64_everything_equal(method, epoch_info):
    epoch_info(3, 10)
    model = build(method, torch.float64)
    new = step(copy.deepcopy(model), torch.float64)
    old = step(copy.deepcopy(model), torch.float64, reference=True)
    assert new[0].keys() == old[0].keys()
    for k in old[0]:
        torch.testing.assert_close(new[0][k], old[0][k], rtol=1e-10, atol=1e-12)
    assert new[1].keys() == old[1].keys()
    for name, g in old[1].items():
        assert g is not None and new[1][name] is not None, name  # every parameter in the graph
        if g.abs().max() > 1e-12:  # conv biases before BN: both ~1e-17
            assert max_rel(new[1][name], g) < 1e-10, name
        else:
            assert new[1][name].abs().max() < 1e-12, name
    for name, b in old[2].items():
        torch.testing.assert_close(new[2][name], b, rtol=1e-10, atol=1e-12, msg=name)
    for a, b in zip(new[3], old[3]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('method', ['baseline', 'pskd-byot-dmflgrad'])
def test_float32_as_close_to_exact_as_before(method, epoch_info):
    epoch_info(3, 10)
    model = build(method, torch.float32)
    exact = step(copy.deepcopy(model).double(), torch.float64, reference=True)
    new = step(copy.deepcopy(model), torch.float32)
    old = step(copy.deepcopy(model), torch.float32, reference=True)
    for k in old[0]:
        torch.testing.assert_close(new[0][k], old[0][k], rtol=1e-5, atol=1e-6)
    for a, b in zip(new[3], old[3]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for name, g in exact[1].items():
        if g.abs().max() > 1e-8:
            assert max_rel(new[1][name], g) <= max_rel(old[1][name], g) + 1e-5, name


def test_idle_exits_run_forward_only(epoch_info):
    """Baseline: exits 1-3 build no graph (no backward through them), their parameters still
    get exact-zero gradients, and their BN statistics still move."""
    epoch_info(0, 10)
    model = build('baseline', torch.float32)
    assert model.exits_without_gradient() == {1, 2, 3}
    before = model.exits[0].branch[1].running_mean.clone()
    outs = model.extract_exits(batch(torch.float32)[0], model.exits_without_gradient())
    assert [o[0].requires_grad for o in outs] == [False, False, False, True]
    losses = model.loss(*batch(torch.float32))
    losses['exit4.loss_cls'].backward()
    for p in model.exits[:3].parameters():
        assert p.grad is not None and not p.grad.any()
    assert not torch.equal(model.exits[0].branch[1].running_mean, before)


@pytest.mark.parametrize('method,frozen', [
    ('baseline', {1, 2, 3}), ('pskd-byot-dmflgrad', set()), ('dmfl-legacy', {1, 2, 3}),
    ('byot3-dmflgrad', set()), ('byot23', {1})])
def test_exits_without_gradient(method, frozen):
    assert build(method, torch.float32).exits_without_gradient() == frozen


def test_patch_gemm_branch_is_used_where_it_pays(monkeypatch):
    """Stride-8 bottleneck branches run as GEMMs; smaller strides, other branches and maps
    that are not multiples of the stride run the modules."""
    calls = []
    from mmkd.models.heads import exit_head
    real = exit_head.patch_gemm_bottleneck
    monkeypatch.setattr(exit_head, 'patch_gemm_bottleneck',
                        lambda *a: calls.append(a[2]) or real(*a))
    for stride, size, branch, used in [(8, 32, 'bottleneck', True), (4, 16, 'bottleneck', False),
                                       (8, 36, 'bottleneck', False),
                                       (8, 32, 'attention_sepconv', False)]:
        calls.clear()
        head = ExitHead(8, 32, stride, NUM_CLASSES, branch=branch)
        logits, feat, fmap = head(torch.randn(2, 8, size, size))
        assert bool(calls) == used
        assert fmap.shape == (2, 32, size // stride, size // stride)
