"""Every paper-B classification config parses with the paper's settings; one config per
teacher/student version and dataset builds and runs a loss step."""
import glob
import os.path as osp

import pytest
import torch

from mmkd.registry import MODELS
from mmkd.testing import scratch_config

CONFIGS = sorted(glob.glob('configs/kdml/*.py'))
VERSIONS = {'r152-to-r50-r34': ('resnet152', ['resnet50', 'resnet34']),
            'r152-to-vgg16-vgg19': ('resnet152', ['vgg16', 'vgg19']),
            'densenet201-to-effb0-effb1': ('densenet201', ['efficientnet_b0', 'efficientnet_b1'])}


def test_every_version_mode_and_dataset_has_a_config():
    names = {osp.basename(c) for c in CONFIGS}
    for ds in ('msi', 'cifar100'):
        for stem, (_, students) in VERSIONS.items():
            for algo in ('kd', 'kdml', 'kdml-offline'):
                assert f'{algo}_{stem}_1xb16-30e_{ds}.py' in names
            assert f'ml_{stem.split("-to-")[1]}_1xb16-30e_{ds}.py' in names


@pytest.mark.parametrize('path', [c for c in CONFIGS if 'classifier_' not in c])
def test_distiller_config_settings(path):
    cfg = scratch_config(path)
    name = osp.basename(path)
    model = cfg.model
    assert model.type == 'KDMLDistiller'
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01, momentum=0.9,
                                               weight_decay=5e-4)
    assert cfg.train_dataloader.batch_size == 16
    assert (model.cls_weight, model.kd_weight, model.temperature) == (0.1, 0.45, 2.0)
    assert model.ml_weight == (0.0 if name.startswith('kd_') else 0.45)
    assert (model.teacher is None) == name.startswith('ml_')
    if 'offline' in name:
        assert model.teacher_mode == 'offline'
        # The checkpoint the matching teacher config writes when trained alone.
        teacher_cfg = model.teacher_ckpt.split('/')[1]
        assert osp.exists(f'configs/kdml/{teacher_cfg}.py')
        assert scratch_config(f'configs/kdml/{teacher_cfg}.py').model.backbone.arch == \
            model.teacher.backbone.arch
    num_classes = 2 if name.endswith('_msi.py') else 100
    assert {s.num_classes for s in model.students} == {num_classes}
    assert [s.backbone.small_input for s in model.students] == [not name.endswith('_msi.py')] * 2


@pytest.mark.parametrize('path', sorted(glob.glob('configs/kdml/kdml_*.py')))
def test_online_config_builds_and_runs_a_loss_step(path):
    cfg = scratch_config(path)
    stem = osp.basename(path).split('_')[1]
    teacher, students = VERSIONS[stem]
    model = MODELS.build(cfg.model)
    assert model.teacher.backbone.arch == teacher
    assert [s.backbone.arch for s in model.students] == students
    size = 32
    data = dict(inputs=torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8),
                data_samples=dict(gt_label=torch.tensor([0, 1]), sample_idx=torch.arange(2)))
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    assert len(losses) == 7 and all(torch.isfinite(v) for v in losses.values())
