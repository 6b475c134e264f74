"""Every sub-model of every wrapper receives its own initialisation.

mmengine's ``BaseModule.init_weights`` only walks into children that have ``init_weights``; a
``torch.nn.ModuleList`` of students has none, so students once kept PyTorch's default weights
(and ignored any ``init_cfg``, e.g. ImageNet weights) while the teacher was initialised."""
import math

import pytest
import torch
from mmdet.models.backbones import ResNet

from mmkd.models.distillers.base_kdml_distiller import build_model_cfg
from mmkd.registry import MODELS
from mmkd.testing import tiny_detector

PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)  # mmdet's bias_init_with_prob(0.01) = -4.595
DET_PRE = dict(type='DetDataPreprocessor', mean=[0, 0, 0], std=[255, 255, 255],
               pad_size_divisor=32)


def cls_bias(detector):
    head = detector.bbox_head
    conv = head.gfl_cls if hasattr(head, 'gfl_cls') else head.retina_cls
    return conv.bias.detach()


def resnet_checkpoint(tmp_path, width=8, seed=7):
    """A checkpoint file of a tiny mmdet ResNet-18 with seeded random weights (far from any
    initialisation: every value is drawn from N(0.5, 1))."""
    backbone = ResNet(depth=18, base_channels=width, num_stages=4, out_indices=(1, 2, 3))
    g = torch.Generator().manual_seed(seed)
    state = {k: (torch.randn(v.shape, generator=g) + 0.5) if v.is_floating_point() else v
             for k, v in backbone.state_dict().items()}
    path = str(tmp_path / 'backbone.pth')
    torch.save(dict(state_dict=state), path)
    return path, state


def with_pretrained_backbone(det_cfg, path):
    det_cfg = dict(det_cfg)
    det_cfg['backbone'] = dict(det_cfg['backbone'],
                               init_cfg=dict(type='Pretrained', checkpoint=path))
    return det_cfg


@pytest.mark.parametrize('head', ['gfl', 'retinanet'])
def test_every_detector_gets_its_head_prior(head):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='DetKDMLDistiller', teacher=tiny_detector(head, 16),
                              students=[tiny_detector(head, 8), tiny_detector(head, 8)],
                              data_preprocessor=DET_PRE))
    model.init_weights()
    for name, detector in model.named_models().items():
        assert detector.is_init, name
        torch.testing.assert_close(cls_bias(detector),
                                   torch.full_like(cls_bias(detector), PRIOR_BIAS))


def test_pretrained_init_cfg_loads_into_every_student(tmp_path):
    path, state = resnet_checkpoint(tmp_path)
    student = with_pretrained_backbone(tiny_detector('gfl', 8), path)
    model = MODELS.build(dict(type='DetKDMLDistiller', teacher=tiny_detector('gfl', 16),
                              students=[student, student], data_preprocessor=DET_PRE))
    model.init_weights()
    for k, detector in enumerate(model.students):
        own = detector.backbone.state_dict()
        for key, value in state.items():
            torch.testing.assert_close(own[key], value, msg=f'students[{k}] {key}')


CIFAR_BACKBONE = dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=8)


def cifar_checkpoint(tmp_path):
    """A checkpoint of ``CIFAR_BACKBONE`` whose every float value is 0.25."""
    backbone = MODELS.build(CIFAR_BACKBONE)
    state = {k: torch.full_like(v, 0.25) if v.is_floating_point() else v
             for k, v in backbone.state_dict().items()}
    path = str(tmp_path / 'cifar_backbone.pth')
    torch.save(dict(state_dict=state), path)
    return dict(CIFAR_BACKBONE, init_cfg=dict(type='Pretrained', checkpoint=path)), state


def classifier(backbone=CIFAR_BACKBONE):
    return dict(type='ImageClassifier', num_classes=3, backbone=backbone)


def test_classification_students_get_init_cfg(tmp_path):
    pretrained, state = cifar_checkpoint(tmp_path)
    model = MODELS.build(dict(type='KDMLDistiller', teacher=classifier(),
                              students=[classifier(pretrained), classifier(pretrained)]))
    model.init_weights()
    assert all(m.is_init for m in model.named_models().values())
    for student in model.students:
        for key, value in student.backbone.state_dict().items():
            torch.testing.assert_close(value, state[key])


def test_single_box_students_get_init_cfg(tmp_path):
    pretrained, state = cifar_checkpoint(tmp_path)
    model = MODELS.build(dict(
        type='SingleBoxKDMLDistiller',
        teacher=dict(type='SingleBoxRegressor', backbone=CIFAR_BACKBONE),
        students=[dict(type='SingleBoxRegressor', backbone=pretrained)] * 2,
        data_preprocessor=DET_PRE))
    model.init_weights()
    for detector in model.students:
        assert detector.is_init
        for key, value in detector.backbone.state_dict().items():
            torch.testing.assert_close(value, state[key])


def test_offline_teacher_checkpoint_wins_over_its_init_cfg(tmp_path):
    path, _ = resnet_checkpoint(tmp_path)
    teacher_cfg = with_pretrained_backbone(tiny_detector('gfl', 16), path)
    torch.manual_seed(3)
    trained = build_model_cfg(tiny_detector('gfl', 16), 'teacher')
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=trained.state_dict()), ckpt)
    model = MODELS.build(dict(type='DetKDMLDistiller', teacher=teacher_cfg, teacher_mode='offline',
                              teacher_ckpt=ckpt, students=[tiny_detector('gfl', 8)] * 2,
                              data_preprocessor=DET_PRE))
    model.init_weights()
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[key], value, msg=key)


def test_multi_exit_exits_are_initialised():
    model = MODELS.build(dict(
        type='MultiExitDistiller', num_classes=5,
        backbone=dict(type='CIFARResNet', depth=18, base_channels=8)))
    layers = [m for e in model.exits for m in e.modules()
              if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    assert layers, 'the exits have no conv / BN layer to check'
    for m in layers:
        torch.nn.init.zeros_(m.weight)
    model.init_weights()
    assert all(e.is_init for e in model.exits)
    for m in layers:
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
        else:
            assert m.weight.abs().sum() > 0, 'an exit conv kept its zeroed weights'
