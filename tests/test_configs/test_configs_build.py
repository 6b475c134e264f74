"""Every config under configs/ parses, names existing types, and its model runs one loss step."""
import glob

import pytest
import torch
from mmengine.config import Config

from mmkd.registry import DATASETS, METRICS, MODELS

CONFIGS = sorted(glob.glob('configs/self_distill/*.py'))


def test_every_paper_row_has_a_config():
    names = {c.split('/')[-1] for c in CONFIGS}
    methods = ['baseline', 'byot', 'dmfl', 'pskd', 'pskd-byot', 'pskd-dmfl', 'byot-dmfl',
               'pskd-byot-dmfl']
    for backbone in ('r18', 'r50', 'rx50'):  # paper A Table 1: 3 backbones x 8 rows
        for method in methods:
            assert f'{method}_{backbone}_1xb128-300e_cifar100.py' in names
    for ablation in ('pskd-byot23-dmfl_r18', 'pskd-byot3-dmfl_r18',  # Table 3
                     'pskd-byot-dmfl_r18-3stages', 'pskd-byot-dmfl_r18-2stages'):  # Table 4
        assert f'{ablation}_1xb128-300e_cifar100.py' in names


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_and_runs_a_loss_step(path, epoch_info):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmkd'
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.1, momentum=0.9,
                                               weight_decay=5e-4, nesterov=True)
    assert cfg.train_cfg.max_epochs == 300 and cfg.train_dataloader.batch_size == 128
    assert DATASETS.get(cfg.train_dataloader.dataset.type) is not None
    assert METRICS.get(cfg.val_evaluator.type) is not None
    model = MODELS.build(cfg.model)
    if model.pskd is not None:
        model.pskd_memory.allocate(4)
    epoch_info(1, 300)
    data = dict(inputs=torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8),
                data_samples=dict(gt_label=torch.tensor([3, 7]), sample_idx=torch.tensor([0, 1])))
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    expected_switches = {name: name in path.split('/')[-1].split('_')[0]
                         for name in ('pskd', 'byot', 'dmfl')}
    assert {n: getattr(model, n) is not None for n in expected_switches} == expected_switches
