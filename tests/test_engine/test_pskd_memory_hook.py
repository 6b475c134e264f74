from types import SimpleNamespace

import pytest
from mmengine.dataset import RepeatDataset
import torch
from torch.utils.data import TensorDataset

from mmkd.engine.hooks import PSKDMemoryHook
from mmkd.registry import MODELS


def runner_for(model, dataset):
    return SimpleNamespace(model=model, train_dataloader=SimpleNamespace(dataset=dataset))


def model_with_pskd(pskd=True):
    cfg = dict(type='MultiExitDistiller', num_classes=4,
               backbone=dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=8))
    if pskd:
        cfg['pskd'] = dict()
    return MODELS.build(cfg)


class TestPSKDMemoryHook:

    def test_allocates_one_row_per_training_sample(self):
        model = model_with_pskd()
        PSKDMemoryHook().before_train(runner_for(model, TensorDataset(torch.zeros(7, 1))))
        assert model.pskd_memory.rows.shape == (7, 4)

    def test_model_without_pskd_is_left_alone(self):
        model = model_with_pskd(pskd=False)
        PSKDMemoryHook().before_train(runner_for(model, TensorDataset(torch.zeros(7, 1))))
        assert not hasattr(model, 'pskd_memory')

    def test_dataset_wrapper_is_refused(self):
        model = model_with_pskd()
        # Only the type matters: the hook refuses before asking for a length.
        wrapped = RepeatDataset.__new__(RepeatDataset)
        with pytest.raises(TypeError, match='RepeatDataset'):
            PSKDMemoryHook().before_train(runner_for(model, wrapped))
