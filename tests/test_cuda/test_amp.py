"""``tools/train.py --amp`` trains the cls, det and multi-exit distillers: bfloat16 autocast on
the CPU (``AutocastOptimWrapper``), fp16 with a loss scale on a GPU (``AmpOptimWrapper``),
the KD and mutual-learning terms in fp32 either way."""
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
from mmkd.testing import (scratch_config, tiny_detector, write_cifar100, write_kvasir_seg,
                          write_msi_tiles)
from mmkd.utils import set_data_root
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


def _loaders(cfg, batch_size, **dataset):
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=batch_size, num_workers=0, persistent_workers=False)
        cfg[name].dataset.update(dataset)


def cls_cfg(root):
    data = write_msi_tiles(str(root / 'msi'), 'kaggle', num_patients=4, tiles_per_patient=2,
                           img_size=32)
    cfg = Config.fromfile('configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py')
    set_data_root(cfg, data)
    backbone = dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=4)
    cfg.model.teacher.backbone = dict(backbone, base_channels=8)
    cfg.model.students = [dict(cfg.model.students[0], backbone=backbone)] * 2
    _loaders(cfg, 8, img_size=32)
    return cfg


def det_cfg(root):
    data = write_kvasir_seg(str(root / 'kvasir'), num_images=4, seed=3,
                            img_size_range=((60, 80), (70, 90)))
    cfg = scratch_config('configs/kvasir_kdml_v3.py')
    set_data_root(cfg, data)
    cfg.model.teacher = tiny_detector('gfl', 16)
    cfg.model.students = [tiny_detector('gfl', 8)] * 2
    _loaders(cfg, 4)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for step in cfg[name].dataset.pipeline:
            if step.type == 'Resize':
                step.scale = (64, 64)
    return cfg


def multi_exit_cfg(root):
    write_cifar100(str(root / 'cifar'), num_train_per_class=1, num_test_per_class=1)
    cfg = Config.fromfile('configs/self_distill/pskd-byot-dmfl_r18_1xb128-300e_cifar100.py')
    set_data_root(cfg, str(root / 'cifar'))
    cfg.model.backbone.base_channels = 4
    _loaders(cfg, 100)
    return cfg


def train_with_amp(cfg, root):
    """``python tools/train.py <cfg> --amp`` for one epoch, in this process."""
    cfg.train_cfg.update(max_epochs=1, val_interval=100)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # training only
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='AmpProbeHook')]
    cfg.randomness = dict(seed=0)
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


@pytest.mark.parametrize('make_cfg', [cls_cfg, det_cfg, multi_exit_cfg],
                         ids=['cls-kdml', 'det-kdml', 'multi-exit'])
def test_amp_trains_every_distiller(make_cfg, tmp_path):
    seen = train_with_amp(make_cfg(tmp_path), tmp_path)
    assert seen['iters'] >= 1
    expected = AmpOptimWrapper if CUDA else AutocastOptimWrapper
    assert all(type(w) is expected and w.cast_dtype == LOW for w in seen['wrappers'])
    assert LOW in seen['conv_dtypes']  # the forward pass ran in low precision
    for key, value in seen['losses'].items():
        assert torch.isfinite(value).all(), key
        if any(term in key for term in ('loss_kd', 'loss_ml', 'loss_dmfl')):
            assert value.dtype == torch.float32, key  # KD / ML terms in fp32


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
