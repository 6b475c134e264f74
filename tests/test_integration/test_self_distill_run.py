"""Short real runs of a paper config on generated CIFAR-100-format data."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.testing import write_cifar100
from mmkd.utils import set_data_root

CONFIG = 'configs/self_distill/pskd-byot-dmfl_r18_1xb128-300e_cifar100.py'
METRICS = ('top1_acc', 'top1_err', 'top5_err', 'nll', 'ece', 'aurc', 'eaurc')
MODELS = ('exit1', 'exit2', 'exit3', 'exit4', 'ensemble')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('cifar')
    write_cifar100(str(root), num_train_per_class=1, num_test_per_class=1)
    return str(root)


def tiny_cfg(data_root, work_dir, max_epochs=2):
    cfg = Config.fromfile(CONFIG)
    set_data_root(cfg, data_root)
    cfg.model.backbone.base_channels = 8
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=32, num_workers=0, persistent_workers=False)
    cfg.train_cfg.max_epochs = max_epochs
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = work_dir.name
    return cfg


def load(path):
    # mmkd registers its allow-list on import, so weights_only=True (the default) works.
    return safe_torch_load(path)


class TestSelfDistillRun:

    def test_two_epochs_report_every_documented_key(self, data_root, tmp_path):
        runner = Runner.from_cfg(tiny_cfg(data_root, tmp_path / 'run'))
        runner.train()
        metrics = runner.val_loop.run()
        assert set(metrics) == {f'{m}/{k}' for m in MODELS for k in METRICS}
        ckpt = load(tmp_path / 'run' / 'epoch_2.pth')
        rows = ckpt['state_dict']['pskd_memory.rows']
        assert rows.shape == (100, 100)
        # Every training sample was visited: each row is a softmax.
        torch.testing.assert_close(rows.sum(1), torch.ones(100))

    def test_resume_after_epoch_one_matches_straight_run(self, data_root, tmp_path):
        straight = Runner.from_cfg(tiny_cfg(data_root, tmp_path / 'straight'))
        straight.train()
        first = Runner.from_cfg(tiny_cfg(data_root, tmp_path / 'first', max_epochs=1))
        first.train()
        cfg = tiny_cfg(data_root, tmp_path / 'resumed')
        cfg.resume, cfg.load_from = True, str(tmp_path / 'first' / 'epoch_1.pth')
        resumed = Runner.from_cfg(cfg)
        resumed.train()
        # A resume that silently started over would also match (same seed): it must not have
        # trained epoch 1 again.
        assert not (tmp_path / 'resumed' / 'epoch_1.pth').exists()
        a = load(tmp_path / 'straight' / 'epoch_2.pth')
        b = load(tmp_path / 'resumed' / 'epoch_2.pth')
        assert a['state_dict'].keys() == b['state_dict'].keys()
        assert 'pskd_memory.rows' in a['state_dict']
        for key in a['state_dict']:
            assert torch.equal(a['state_dict'][key], b['state_dict'][key]), key
        for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
            assert torch.equal(sa['momentum_buffer'], sb['momentum_buffer'])
        assert a['meta']['epoch'] == b['meta']['epoch'] == 2
