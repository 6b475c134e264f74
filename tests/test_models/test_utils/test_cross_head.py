"""Cross-head machinery: a head run from tower layer i equals its own forward, and a frozen
head passes gradient to the features only."""
import re

import pytest
import torch
from mmengine.hub import get_config

from mmkd.models.utils import (CROSS_HEAD_NAMES, cross_head_unsupported, head_from_layer,
                               tower_features)
from mmkd.registry import MODELS

CONFIGS = {
    'RetinaHead': 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
    'FreeAnchorRetinaHead': 'mmdet::free_anchor/freeanchor_r50_fpn_1x_coco.py',
    'PISARetinaHead': 'mmdet::pisa/retinanet-r50_fpn_pisa_1x_coco.py',
    'ATSSHead': 'mmdet::atss/atss_r50_fpn_1x_coco.py',
    'PAAHead': 'mmdet::paa/paa_r50_fpn_1x_coco.py',
    'GFLHead': 'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    'FCOSHead': 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py',
    'AutoAssignHead': 'mmdet::autoassign/autoassign_r50-caffe_fpn_1x_coco.py',
}


def build_head(name: str, in_channels: int = 32, feat_channels: int = 32,
               stacked_convs: int = 2, norm_cfg=None):
    cfg = get_config(CONFIGS[name]).model.bbox_head.to_dict()
    cfg.update(num_classes=1, in_channels=in_channels, feat_channels=feat_channels,
               stacked_convs=stacked_convs)
    if norm_cfg is not None:
        cfg['norm_cfg'] = norm_cfg
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def fpn(channels: int = 32, levels: int = 5, batch: int = 2):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(batch, channels, 32 >> i, 32 >> i, generator=g) for i in range(levels)]


def flat(outs):
    return [t for level in outs for t in level]


def test_every_cross_head_is_tested():
    assert set(CROSS_HEAD_NAMES) == set(CONFIGS)


@pytest.mark.parametrize('name', sorted(CONFIGS))
@pytest.mark.parametrize('training', [True, False])
def test_head_from_layer_equals_the_heads_own_forward(name, training):
    head = build_head(name).train(training)
    feats = fpn()
    with torch.no_grad():
        own = head(feats)
        for layer in range(head.stacked_convs + 1):
            for frozen in (False, True):
                again = head_from_layer(head, tower_features(head, feats, layer), layer, frozen)
                assert len(again) == len(own)
                for a, b in zip(flat(again), flat(own)):
                    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the towers are restored
    assert all(type(m).__name__ != '_Pick' for m in head.modules())


def test_frozen_head_sends_gradient_to_features_only():
    teacher = build_head('GFLHead')
    student = build_head('GFLHead')
    student.zero_grad(set_to_none=True)
    feats = [f.requires_grad_() for f in fpn()]
    tower = tower_features(student, feats, 1)
    cls_scores, bbox_preds = head_from_layer(teacher, tower, 1, frozen=True)
    # a random projection: a plain sum of group-normalised maps has (almost) no gradient
    g = torch.Generator().manual_seed(2)
    (sum((c * torch.randn(c.shape, generator=g)).sum() for c in cls_scores) +
     sum((b * torch.randn(b.shape, generator=g)).sum() for b in bbox_preds)).backward()
    assert all(p.grad is None for p in teacher.parameters())
    # the student's first tower convs and the FPN features get the cross-head gradient
    assert torch.count_nonzero(student.cls_convs[0].conv.weight.grad) > 0
    assert torch.count_nonzero(student.reg_convs[0].conv.weight.grad) > 0
    assert all(torch.count_nonzero(f.grad) > 0 for f in feats)
    # the student's later layers and predictors are not on this path
    assert student.gfl_cls.weight.grad is None and student.cls_convs[1].conv.weight.grad is None


def test_frozen_head_leaves_running_statistics_alone():
    head = build_head('RetinaHead', norm_cfg=dict(type='BN')).train()
    student = build_head('RetinaHead', norm_cfg=dict(type='BN')).train()
    before = {n: b.clone() for n, b in head.named_buffers()}
    assert before  # BN running statistics exist
    head_from_layer(head, tower_features(student, fpn(), 1), 1, frozen=True)
    for n, b in head.named_buffers():
        assert torch.equal(b, before[n]), n
    head(fpn())  # the head's own forward in training mode does update them
    assert any(not torch.equal(b, before[n]) for n, b in head.named_buffers())


@pytest.mark.parametrize('student,layer,match', [
    (dict(feat_channels=64), 1, r'at tower layer 1 the student has feat_channels=64 and '
                                r'the teacher 32'),
    (dict(in_channels=64), 0, r'at tower layer 0 the student has in_channels=64'),
    (dict(stacked_convs=1), 2, r'layer must be an integer in \[0, 1\]'),
])
def test_incompatible_towers_are_named(student, layer, match):
    reason = cross_head_unsupported(build_head('GFLHead', **student), build_head('GFLHead'),
                                    layer)
    assert reason is not None
    assert re.search(match, reason), reason
    assert cross_head_unsupported(build_head('GFLHead'), build_head('GFLHead'), layer if
                                  layer < 2 else 1) is None


def test_other_heads_are_refused_with_the_reason():
    cfg = get_config('mmdet::vfnet/vfnet_r50_fpn_1x_coco.py').model.bbox_head.to_dict()
    cfg.update(num_classes=1, in_channels=32, feat_channels=32, stacked_convs=1)
    vfnet = MODELS.build(cfg)
    reason = cross_head_unsupported(vfnet, vfnet, 0)
    assert reason.startswith('VFNetHead does not run plain cls_convs / reg_convs towers')
    assert reason.endswith(', '.join(CROSS_HEAD_NAMES) + ')')
    assert 'is not a GFLHead' in cross_head_unsupported(build_head('ATSSHead'),
                                                        build_head('GFLHead'), 0)
