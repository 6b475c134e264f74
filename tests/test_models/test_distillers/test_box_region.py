"""DetKDMLDistiller's box region: box KD / LD / box ML only where the target is informative.

The reference positives are recomputed here from the head's public ``get_targets`` (a second
assignment), independently of the distiller's reading of its own loss pass.
"""
import pytest
import torch
from mmdet.models.utils import unpack_gt_instances

from mmkd.models.losses import box_kd_loss, ld_kd_loss
from mmkd.models.utils import dense_predictions
from mmkd.models.utils.positive_locations import record_positives
from mmkd.testing import tiny_det_batch as batch
from mmkd.testing import tiny_det_distiller as build
from mmkd.testing import tiny_detector

SCALE = torch.tensor([64., 64., 64., 64.])


def reference_positives(det, x, samples):
    """(B, N) positives of ``det``'s assignment, from ``get_targets`` called directly."""
    head = det.bbox_head
    feats = det.extract_feat(x)
    cls_scores = head(feats)[0]
    sizes = [c.shape[-2:] for c in cls_scores]
    gt, _, metas = unpack_gt_instances(samples)
    if hasattr(head, 'get_anchors'):
        anchors, valid = head.get_anchors(sizes, metas, device=x.device)
        targets = head.get_targets(anchors, valid, gt, metas)
        labels = targets[1] if type(head).__name__ in ('GFLHead', 'ATSSHead') else targets[0]
        labels = torch.cat(list(labels), 1)
    else:  # FCOS: per level, images one after another
        points = head.prior_generator.grid_priors(sizes, dtype=x.dtype, device=x.device)
        labels = torch.cat([lv.reshape(len(samples), -1)
                            for lv in head.get_targets(points, gt)[0]], 1)
    return (labels >= 0) & (labels < head.num_classes)


def dense_of(model, x):
    return {name: dense_predictions(det.bbox_head, det.bbox_head(det.extract_feat(x)))
            for name, det in model.named_models().items()}


@pytest.mark.parametrize('head', ['gfl', 'retinanet', 'fcos', 'atss'])
def test_positive_region_is_the_students_own_assignment(head):
    model = build(head, box_region='positive')
    x, samples = batch()
    losses = model.loss(x, samples)
    dense = dense_of(model, x)
    pos = reference_positives(model.students[0], x, samples)
    assert 0 < pos.sum() < pos.numel()  # a real region, not everything or nothing
    s, t = dense['student0'], dense['teacher']
    weight = t.class_probs().max(-1).values * pos
    torch.testing.assert_close(losses['student0.loss_kd_box'], 0.45 * box_kd_loss(
        (s.boxes / SCALE).flatten(0, 1), (t.boxes / SCALE).flatten(0, 1), weight.flatten()))
    peer = dense['student1']
    peer_weight = peer.class_probs().max(-1).values * pos  # student0's positives, peer's conf
    torch.testing.assert_close(losses['student0.loss_ml_box'], 0.45 * box_kd_loss(
        (s.boxes / SCALE).flatten(0, 1), (peer.boxes / SCALE).flatten(0, 1),
        peer_weight.flatten()))
    if head == 'gfl':
        torch.testing.assert_close(losses['student0.loss_kd_ld'], 0.45 * 0.25 * ld_kd_loss(
            s.dists.flatten(0, 1), t.dists.flatten(0, 1), weight.flatten()))


def test_box_gradient_reaches_positive_locations_only():
    model = build(box_region='positive')
    x, samples = batch()
    dense = {}
    original = model._run

    def keep(det, inputs):
        outs, d = original(det, inputs)
        d.boxes.retain_grad()
        dense[len(dense)] = d
        return outs, d

    model._run = keep
    losses = model.loss(x, samples)
    losses['student0.loss_kd_box'].backward()
    grad = dense[1].boxes.grad.abs().sum(-1)  # student0 (the teacher ran first)
    pos = reference_positives(model.students[0], x, samples)
    assert grad[pos].gt(0).any()
    assert torch.count_nonzero(grad[~pos]) == 0


def test_no_ground_truth_no_box_distillation():
    model = build(box_region='positive')
    x, samples = batch()
    for s in samples:
        s.gt_instances = s.gt_instances[:0]
    losses = model.loss(x, samples)
    assert losses['student0.loss_kd_box'].item() == 0
    assert losses['student0.loss_kd_ld'].item() == 0
    assert losses['student0.loss_kd_cls'].item() > 0  # classes are still distilled


def test_confident_and_topk_regions():
    x, samples = batch()
    confident = build(box_region='confident')
    topk = build(box_region='topk', box_region_topk=5)
    for model, region in ((confident, 'confident'), (topk, 'topk')):
        dense = dense_of(model, x)
        s, t = dense['student0'], dense['teacher']
        conf = t.class_probs().max(-1).values
        # untrained scores sit near the prior 0.01: a threshold between them
        thr = model.box_region_thr = float(conf.median())
        losses = model.loss(x, samples)
        if region == 'confident':
            keep = conf >= thr
            assert 0 < keep.sum() < keep.numel()
        else:
            keep = torch.zeros_like(conf, dtype=torch.bool)
            keep.scatter_(1, conf.topk(5, dim=1).indices, True)
            assert keep.sum(1).tolist() == [5, 5]
        torch.testing.assert_close(losses['student0.loss_kd_box'], 0.45 * box_kd_loss(
            (s.boxes / SCALE).flatten(0, 1), (t.boxes / SCALE).flatten(0, 1),
            (conf * keep).flatten()))


def test_recorder_leaves_the_head_unchanged():
    model = build()
    head = model.students[0].bbox_head
    x, samples = batch()
    gt, ignore, metas = unpack_gt_instances(samples)
    outs = head(model.students[0].extract_feat(x))
    plain = head.loss_by_feat(*outs, gt, metas, ignore)
    with record_positives(head, len(samples)) as found:
        recorded = head.loss_by_feat(*outs, gt, metas, ignore)
    assert 'get_targets' not in vars(head)  # the instance attribute is gone again
    for key in plain:
        torch.testing.assert_close(sum(recorded[key]), sum(plain[key]))
    assert found.mask.shape == outs[0][0].new_zeros(2, sum(
        o.shape[-1] * o.shape[-2] for o in outs[0])).shape


def test_settings_checked_at_build():
    with pytest.raises(ValueError, match='model.box_region must be one of'):
        build(box_region='everywhere')
    with pytest.raises(ValueError, match=r'model.box_region_thr must be in \[0, 1\]'):
        build(box_region='confident', box_region_thr=1.5)
    with pytest.raises(ValueError, match='model.box_region_topk'):
        build(box_region='topk', box_region_topk=0)


def test_positive_region_refused_for_heads_whose_positives_are_not_read():
    vfnet = dict(tiny_detector('atss', 8), bbox_head=dict(
        type='VFNetHead', num_classes=1, in_channels=32, feat_channels=32, stacked_convs=1))
    vfnet['bbox_head'].pop('loss_centerness', None)
    cfg = dict(base='mmdet::vfnet/vfnet_r50_fpn_1x_coco.py',
               backbone=vfnet['backbone'], neck=vfnet['neck'],
               bbox_head=dict(num_classes=1, in_channels=32, feat_channels=32, stacked_convs=1))
    with pytest.raises(ValueError, match=r"box_region='positive'.*VFNetHead.*students\[0\]"):
        build(teacher=cfg, students=[cfg, cfg], box_region='positive')
    build(teacher=cfg, students=[cfg, cfg], box_region='confident')  # the other regions work
    # the default: the positives where they are read, else the confident locations, said
    assert build(teacher=cfg, students=[cfg, cfg]).box_region == 'confident'
    assert build().box_region == 'positive'
