"""A NaN or infinite loss stops training before the optimiser step, naming key and iteration;
the last good checkpoint stays as it was."""
import hashlib
import math
import re

import pytest
import torch
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner

from mmkd.models import (DetKDMLDistiller, ImageClassifier, KDMLDistiller, MultiExitDistiller,
                         SingleBoxKDMLDistiller, SingleBoxRegressor)
from mmkd.models.utils import NonFiniteLossError
from mmkd.utils import AtomicLocalBackend, set_data_root
from mmkd.testing import scratch_config

CONFIG = 'configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py'
MMKD_MODELS = (MultiExitDistiller, KDMLDistiller, DetKDMLDistiller, SingleBoxKDMLDistiller,
               ImageClassifier, SingleBoxRegressor)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PoisonLossHook(Hook):
    """From runner.iter == ``at`` on, multiplies loss ``key`` by ``value`` (in the graph, so
    a step taken on it would turn weights into NaN); records the epoch-1 checkpoint's hash
    just before."""

    def __init__(self, at, key, value, checkpoint):
        self.at, self.key, self.value, self.checkpoint = at, key, value, checkpoint
        self.hash_before = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter != self.at:
            return
        self.hash_before = sha256(self.checkpoint)
        model, original = runner.model, runner.model.loss

        def poisoned(*args, **kwargs):
            losses = original(*args, **kwargs)
            losses[self.key] = losses[self.key] * self.value
            return losses

        model.loss = poisoned


def tiny_cfg(data_root, work_dir):
    cfg = scratch_config(CONFIG)
    set_data_root(cfg, data_root)
    cfg.model.teacher.backbone = dict(type='CIFARResNet', depth=18, num_stages=2,
                                      base_channels=8)
    for student in cfg.model.students:
        student.backbone = dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=4)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=8, num_workers=0, persistent_workers=False)
        cfg[name].dataset.img_size = 32
    cfg.train_cfg.update(max_epochs=2, val_interval=10)
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.mark.parametrize('value, shown', [(float('nan'), 'nan'), (float('inf'), 'inf')])
def test_run_stops_at_the_iteration_and_keeps_the_last_checkpoint(msi_root, tmp_path, value,
                                                                  shown):
    work = tmp_path / 'run'
    runner = Runner.from_cfg(tiny_cfg(msi_root, work))
    at = len(runner.train_dataloader) + 1  # the second iteration of epoch 2
    hook = PoisonLossHook(at, 'student1.loss_kd', value, work / 'epoch_1.pth')
    runner.register_hook(hook)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    message = str(info.value)
    assert re.search(rf'training iteration {at + 1} \(runner.iter={at}\), epoch 2: loss '
                     rf'terms student1.loss_kd={shown}\. Training stopped before the '
                     'optimiser step', message), message
    assert 'student0.' not in message  # only the offending key is named
    # The checkpoint was written by mmkd's atomic backend, and nothing replaced it.
    ckpt_hook = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
    assert isinstance(ckpt_hook.file_backend, AtomicLocalBackend)
    assert sha256(work / 'epoch_1.pth') == hook.hash_before
    assert sorted(p.name for p in work.glob('*.pth*')) == ['epoch_1.pth', 'epoch_1.pth.sha256']
    assert (work / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    # No step was taken on the poisoned loss: every weight is still finite.
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


@pytest.mark.parametrize('model_cls', MMKD_MODELS, ids=lambda c: c.__name__)
def test_every_mmkd_model_checks_its_losses(model_cls):
    # parse_losses reads no module state, so an instance without __init__ is enough.
    model = model_cls.__new__(model_cls)
    losses = {'student0.loss_cls': torch.tensor(1.0),
              'student0.loss_kd': [torch.tensor(0.5), torch.tensor(float('nan'))],
              'pskd_alpha': torch.tensor(float('nan'))}  # logged only, never checked
    with pytest.raises(NonFiniteLossError, match=r'loss terms student0\.loss_kd=nan\. '):
        model.parse_losses(losses)
    loss, log_vars = model.parse_losses({'student0.loss_cls': torch.tensor(1.0),
                                         'pskd_alpha': torch.tensor(float('nan'))})
    assert loss.item() == 1.0 and math.isnan(log_vars['pskd_alpha'].item())


def test_overflowing_sum_and_unknown_iteration_are_said():
    hub = MessageHub.get_current_instance()
    iteration = hub.pop_info('iter', None)
    try:
        with pytest.raises(NonFiniteLossError, match=r'outside a runner .* the summed loss '
                           r'\(inf; every term is finite, their sum overflows\)'):
            ImageClassifier.__new__(ImageClassifier).parse_losses(
                {'a.loss': torch.tensor(3e38), 'b.loss': torch.tensor(3e38)})
    finally:
        if iteration is not None:
            hub.update_info('iter', iteration)
