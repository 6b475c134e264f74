"""Kvasir-SEG configs: paper B's versions and variants parse with the right settings, and each
version's model builds with matching head geometry and runs a loss step."""
import glob
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmkd.registry import MODELS
from mmkd.testing import scratch_config

VERSIONS = {'v1': ('resnet152', ['resnet50', 'resnet34']),
            'v2': ('resnet152', ['vgg16', 'vgg19']),
            'v3': ('densenet201', ['efficientnet_b0', 'efficientnet_b1'])}


def samples(n, size):
    out = []
    for _ in range(n):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size), scale_factor=(1.0, 1.0),
                                        batch_input_shape=(size, size)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[8., 8., 40., 48.]]),
                                      labels=torch.tensor([0]))
        out.append(s)
    return out


def test_every_variant_exists():
    names = {osp.basename(p) for p in glob.glob('configs/kvasir/*.py')}
    for v in VERSIONS:
        assert osp.exists(f'configs/kvasir_kdml_{v}.py')
        for variant in ('kd', 'ml', 'kdml-offline', 'box-kdml'):
            assert f'kvasir_{variant}_{v}.py' in names


@pytest.mark.parametrize('v', list(VERSIONS))
def test_version_settings_and_offline_teacher(v):
    cfg = scratch_config(f'configs/kvasir_kdml_{v}.py')
    teacher, students = VERSIONS[v]
    assert cfg.model.type == 'DetKDMLDistiller' and cfg.model.teacher_mode == 'online'
    assert cfg.model.teacher.backbone.arch == teacher
    assert [s.backbone.arch for s in cfg.model.students] == students
    assert cfg.train_dataloader.dataset.type == 'KvasirSegDataset'
    assert cfg.val_evaluator.type == 'DetIoUMetric'
    assert cfg.optim_wrapper.optimizer.lr == 0.01 and cfg.train_dataloader.batch_size == 16
    offline = scratch_config(f'configs/kvasir/kvasir_kdml-offline_{v}.py')
    teacher_cfg = offline.model.teacher_ckpt.split('/')[1]
    alone = scratch_config(f'configs/kvasir/{teacher_cfg}.py')
    assert alone.model.backbone.arch == teacher
    assert scratch_config(f'configs/kvasir/kvasir_ml_{v}.py').model.teacher is None
    assert scratch_config(f'configs/kvasir/kvasir_kd_{v}.py').model.ml_weight == 0


@pytest.mark.parametrize('path', ['configs/kvasir_kdml_v3.py', 'configs/kvasir/kvasir_box-kdml_v1.py'])
def test_model_builds_and_runs_a_loss_step(path):
    cfg = scratch_config(path)
    model = MODELS.build(cfg.model)
    data = dict(inputs=torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8),
                data_samples=samples(2, 64))
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    flat = [sum(v) if isinstance(v, list) else v for v in losses.values()]
    assert all(torch.isfinite(v) for v in flat)
    assert any(k.startswith('student1.loss_ml') for k in losses)
