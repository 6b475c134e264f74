"""``tools/train.py --amp`` trains every distiller (cls, det and single-box KD + ML,
multi-exit): bfloat16 autocast on the CPU (``AutocastOptimWrapper``), fp16 with a loss scale
on a GPU (``AmpOptimWrapper``), the KL terms of KD and mutual learning in fp32 either way."""
import runpy
import sys
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapperDict

from mmkd.engine.optimizers import AutocastOptimWrapper
from mmkd.registry import HOOKS
from mmkd.testing.tiny_runs import tiny_run_cfg
from mmkd.utils.amp import enable_amp

CUDA = torch.cuda.is_available()
LOW = torch.float16 if CUDA else torch.bfloat16
SEEN = {}


@HOOKS.register_module(force=True)  # test-only hook; re-imports must not fail
class AmpProbeHook(Hook):
    """Records, for the first training iteration, the wrappers, the dtype of every conv
    output and the dtype of every loss term."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        SEEN['conv_dtypes'] = set()
        self._handles = [m.register_forward_hook(
            lambda mod, inp, out: SEEN['conv_dtypes'].add(out.dtype))
            for m in model.modules() if isinstance(m, torch.nn.Conv2d)]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for handle in self._handles:
            handle.remove()
        wrappers = runner.optim_wrapper
        wrappers = (list(wrappers.values()) if isinstance(wrappers, OptimWrapperDict)
                    else [wrappers])
        SEEN.update(wrappers=wrappers, iters=SEEN.get('iters', 0) + 1,
                    losses={k: v for k, v in outputs.items() if 'loss' in k})


def train_with_amp(cfg, root):
    """``python tools/train.py <cfg> --amp`` for one epoch, in this process."""
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='AmpProbeHook')]
    path = str(root / 'amp_cfg.py')
    cfg.dump(path)
    SEEN.clear()
    before = set(MMLogger._instance_dict)
    argv = ['tools/train.py', path, '--amp', '--work-dir', str(root / 'work')]
    try:
        with mock.patch.object(sys, 'argv', argv):
            runpy.run_path('tools/train.py', run_name='__main__')
    finally:
        for name in set(MMLogger._instance_dict) - before:
            for handler in MMLogger._instance_dict.pop(name).handlers:
                handler.close()
    return SEEN


@pytest.mark.parametrize('kind', ['cls-kdml', 'det-kdml', 'box-kdml', 'multi-exit'])
def test_amp_trains_every_distiller(kind, tmp_path):
    seen = train_with_amp(tiny_run_cfg(kind, str(tmp_path), batch_size=4), tmp_path)
    assert seen['iters'] >= 1
    expected = AmpOptimWrapper if CUDA else AutocastOptimWrapper
    assert all(type(w) is expected and w.cast_dtype == LOW for w in seen['wrappers'])
    assert LOW in seen['conv_dtypes']  # the forward pass ran in low precision
    for key, value in seen['losses'].items():
        assert torch.isfinite(value).all(), key
        # The KL terms (KD, ML, LD, DMFL) in fp32; the box distances (L1 + GIoU) may not be.
        if 'loss_' in key and not key.endswith('_box') and any(
                term in key for term in ('loss_kd', 'loss_ml', 'loss_dmfl')):
            assert value.dtype == torch.float32, key


def test_enable_amp_keeps_per_model_settings():
    cfg = Config(dict(optim_wrapper=dict(
        constructor='PerModelOptimWrapperConstructor', type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.1), per_model=dict(teacher=dict(clip_grad=None)))))
    enable_amp(cfg)
    assert cfg.optim_wrapper.constructor == 'PerModelOptimWrapperConstructor'
    assert cfg.optim_wrapper.per_model == dict(teacher=dict(clip_grad=None))
    if CUDA:
        assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == ('AmpOptimWrapper',
                                                                     'float16')
    else:
        assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == (
            'mmkd.AutocastOptimWrapper', 'bfloat16')


def test_autocast_wrapper_refuses_fp16_on_cpu():
    model = torch.nn.Linear(2, 2)
    wrapper = AutocastOptimWrapper(dtype='float16',
                                   optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match='bfloat16 only'):
        with wrapper.optim_context(model):
            pass
    with pytest.raises(ValueError, match='bfloat16 or float16'):
        AutocastOptimWrapper(dtype='float64',
                             optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
