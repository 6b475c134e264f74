"""mmkd's Runner train loop over a bare PyTorch loop: same model, loader and batch size.

The two alternate iteration by iteration: a hook that runs last after each Runner
iteration times one bare iteration (data loading, preprocessing, forward, backward, SGD
step); the Runner's own iteration is the time between the end of one bare iteration and
the end of the next Runner iteration, hooks and logging included.
"""
import tempfile
import time

import mmengine
import torch
from mmengine.runner import Runner

from mmkd.testing import scratch_config
from mmkd.utils import set_data_root
from .common import CIFAR_SAMPLE, SELF_DISTILL_CFGS, ratio_row, timed

NAME = 'runner_loop'


def _runner_cfg(work_dir, iters, batch_size):
    cfg = scratch_config(SELF_DISTILL_CFGS[18])
    set_data_root(cfg, CIFAR_SAMPLE)
    cfg.train_dataloader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10**9)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    cfg.log_level = 'WARNING'
    cfg.param_scheduler = []
    cfg.work_dir = work_dir
    return cfg


def run(args):
    iters = args.reps + 1
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner.from_cfg(_runner_cfg(tmp, iters, args.batch_size))
        model = runner.model
        optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        batches = iter(runner.train_dataloader)
        times = dict(runner=[], bare=[])
        marks = [None]

        def bare_iteration():
            data = model.data_preprocessor(next(batches), True)
            loss = sum(v for k, v in model(**data, mode='loss').items() if 'loss' in k)
            optim.zero_grad()
            loss.backward()
            optim.step()

        class Alternate(mmengine.hooks.Hook):

            def before_train(self, runner):
                marks[0] = time.perf_counter()

            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                now = time.perf_counter()
                times['runner'].append(now - marks[0])
                times['bare'].append(timed(bare_iteration))
                marks[0] = time.perf_counter()

        runner.register_hook(Alternate(), 'LOWEST')
        runner.train()
    run_t, bare_t = times['runner'][1:], times['bare'][1:]  # first iteration: warm-up
    return [ratio_row('Runner loop / bare PyTorch loop (self-distill R18)', run_t, bare_t,
                      1.05, f'batch {args.batch_size}, {len(run_t)} iterations')]
