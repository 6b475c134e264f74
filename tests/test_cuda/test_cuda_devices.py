"""Every distiller, hook, loss and metric on a CUDA GPU (skipped without one; run by
``tools/gpu_check.sh``): short runs of each distiller's real config (train on the GPU, then
validate and test with its metrics and hooks), the losses on CUDA tensors against the CPU, and
no GPU wait (``torch.cuda.set_sync_debug_mode``) in mmkd's code during training iterations."""
import os
import warnings

import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop, Runner

from mmkd.models import losses as L
from mmkd.registry import LOOPS
from mmkd.testing.tiny_runs import KINDS, tiny_run_cfg

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

EXTRA_HOOKS = {
    'det-kdml': lambda out: [dict(type='DetComparisonHook', out_dir=out, max_images=2)],
}
SYNC_WARNINGS = []


@pytest.mark.parametrize('kind', KINDS)
def test_distiller_trains_validates_and_tests_on_cuda(kind, tmp_path):
    cfg = tiny_run_cfg(kind, str(tmp_path), batch_size=2, scale=(160, 160), validate=True)
    pictures = str(tmp_path / 'pictures')
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='mmkd.NumClassesCheckHook'),
                        dict(type='mmkd.ProgressBarHook'),
                        *EXTRA_HOOKS.get(kind, lambda out: [])(pictures)]
    dump = str(tmp_path / 'predictions.pkl')
    cfg.test_evaluator = [cfg.test_evaluator,
                          dict(type='mmkd.DumpModelPredictions', out_file_path=dump)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    assert {p.device.type for p in model.parameters()} == {'cuda'}
    metrics = runner.test()
    assert metrics and all(torch.isfinite(torch.tensor(float(v))) for v in metrics.values())
    assert os.path.getsize(dump) > 0
    if kind in EXTRA_HOOKS:
        assert len(os.listdir(pictures)) >= 1  # one per test image (the tiny set has one)


def _pair(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)


def _boxes(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 0.5
    return torch.cat([xy, xy + 0.1 + torch.rand(n, 2, generator=g) * 0.4], 1)


LOSSES = {  # name: (loss, a KL / cross-entropy term that must come out in fp32)
    'kd_kl_div': (lambda s, t: L.kd_kl_div_loss(s, t, 2.0), True),
    'reverse_kd_kl_div': (lambda s, t: L.reverse_kd_kl_div_loss(s, t, 2.0), True),
    'sigmoid_kd': (lambda s, t: L.sigmoid_kd_loss(s, t), True),
    'soft_target_ce': (lambda s, t: L.soft_target_ce_loss(s, t.float().softmax(1)), True),
    'feature_hint': (lambda s, t: L.feature_hint_loss(s, t), False),
}


@pytest.mark.parametrize('name', sorted(LOSSES))
@pytest.mark.parametrize('amp', [False, True], ids=['fp32', 'fp16-autocast'])
def test_losses_on_cuda_match_cpu(name, amp):
    """On CUDA tensors, and on fp16 ones under autocast (as a head's outputs arrive)."""
    loss, kl = LOSSES[name]
    s, t = _pair(8, 10)
    expected = loss(s, t)
    s, t = (s.cuda().half(), t.cuda().half()) if amp else (s.cuda(), t.cuda())
    with torch.autocast('cuda', dtype=torch.float16, enabled=amp):
        got = loss(s, t)
    assert got.device.type == 'cuda'
    if kl:
        assert got.dtype == torch.float32
    tol = dict(rtol=2e-2, atol=1e-3) if amp else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.float().cpu(), expected, **tol)


def test_box_and_map_losses_on_cuda_match_cpu():
    b, t = _boxes(6), _boxes(6, seed=1)
    w = torch.rand(6)
    f, g = _pair(2, 8, 4, 4)
    d, e = _pair(6, 4, 17)
    cases = [
        (L.box_distance, (b, t)),
        (L.box_kd_loss, (b, t, w)),
        (L.dmfl_loss, (f, g)),
        (L.ld_kd_loss, (d, e, w)),
        (L.cwd_loss, (f, g)),
        (L.pkd_loss, (f, g)),
    ]
    for fn, args in cases:
        expected = fn(*args)
        got = fn(*(a.cuda() for a in args))
        assert got.device.type == 'cuda', fn.__name__
        torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-5,
                                   msg=fn.__name__)


@LOOPS.register_module(force=True)  # test-only loop; re-imports must not fail
class SyncDebugLoop(EpochBasedTrainLoop):
    """Records CUDA's synchronising-call warnings in every iteration but the first."""

    def run_iter(self, idx, data_batch) -> None:
        if self._iter == 0:
            return super().run_iter(idx, data_batch)
        torch.cuda.set_sync_debug_mode('warn')
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                super().run_iter(idx, data_batch)
        finally:
            torch.cuda.set_sync_debug_mode('default')
        SYNC_WARNINGS.extend(w for w in caught if 'synchroniz' in str(w.message))


@pytest.mark.parametrize('kind', KINDS)
def test_no_gpu_wait_in_mmkd_training_iterations(kind, tmp_path):
    """CUDA's own check (set_sync_debug_mode) of what tests/test_cuda/test_host_syncs.py
    counts on the CPU; the same exclusions (mmengine's logging, mmdet's heads, mmkd's
    finite-loss flag)."""
    cfg = tiny_run_cfg(kind, str(tmp_path), batch_size=2)
    cfg.train_cfg.type = 'mmkd.SyncDebugLoop'
    SYNC_WARNINGS.clear()
    Runner.from_cfg(cfg).train()
    ours = [f'{w.filename}:{w.lineno}' for w in SYNC_WARNINGS
            if f'{os.sep}mmkd{os.sep}' in w.filename and not w.filename.endswith('finite_loss.py')]
    assert not ours, ours
