"""YOLOX and YOLOv3 decoded as their own ``predict_by_feat`` decode them, and distilled like
the other dense heads."""
import math

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.hub import get_config

from mmkd.models.utils import dense_predictions
from mmkd.models.utils.dense_predictions import product_logit
from mmkd.registry import MODELS
from mmkd.testing import tiny_det_batch
from mmkd.testing.mmdet_configs import light_detector


def yolox():
    model = get_config('mmdet::yolox/yolox_tiny_8xb8-300e_coco.py').model.to_dict()
    return light_detector(model)


def yolov3():
    """A tiny YOLOv3: ResNet-18 (16 base channels) → YOLOV3Neck → YOLOV3Head, one class."""
    model = get_config('mmdet::yolo/yolov3_d53_8xb8-320-273e_coco.py').model.to_dict()
    pre = model.pop('data_preprocessor')
    pre.pop('batch_augments', None)
    model['backbone'] = dict(type='ResNet', depth=18, base_channels=16, num_stages=4,
                             out_indices=(1, 2, 3), norm_cfg=dict(type='BN'), init_cfg=None)
    model['neck'].update(in_channels=[128, 64, 32], out_channels=[64, 32, 16])
    model['bbox_head'].update(num_classes=1, in_channels=[64, 32, 16],
                              out_channels=[64, 32, 16])
    return model, pre, 64


def build_detector(make):
    cfg, _, size = make()
    torch.manual_seed(0)
    det = MODELS.build(cfg)
    det.init_weights()
    return det.eval(), size


def no_post_process(head):
    head._bbox_post_process = lambda results, *args, **kwargs: results


def test_product_logit_is_the_logit_of_the_product():
    a, b = torch.tensor([0.0, 3.0, -20.0]), torch.tensor([math.log(3), -1.0, -20.0])
    p = a.sigmoid() * b.sigmoid()  # 0.5 · 0.75 = 0.375, ..., 4.2e-18 (inverse_sigmoid: 1e-5)
    torch.testing.assert_close(product_logit(a, b), torch.log(p / (1 - p)))
    assert product_logit(a, b)[0].item() == pytest.approx(math.log(0.375 / 0.625), abs=1e-6)
    assert torch.isfinite(product_logit(torch.tensor([50.]), torch.tensor([50.]))).all()


def test_yolox_decodes_like_predict_by_feat():
    det, size = build_detector(yolox)
    head = det.bbox_head
    with torch.no_grad():
        outs = head(det.extract_feat(torch.rand(1, 3, size, size)))
        dense = dense_predictions(head, outs)
        no_post_process(head)
        own = head.predict_by_feat(*outs, batch_img_metas=[dict(img_shape=None)],
                                   cfg=ConfigDict(score_thr=-1.0), rescale=False)[0]
    n = sum(m.shape[-2] * m.shape[-1] for m in outs[0])
    assert dense.boxes.shape == (1, n, 4) and len(own.bboxes) == n
    torch.testing.assert_close(dense.boxes[0], own.bboxes)
    torch.testing.assert_close(dense.class_probs()[0].reshape(-1), own.scores)


def test_yolov3_decodes_like_predict_by_feat():
    det, size = build_detector(yolov3)
    head = det.bbox_head
    with torch.no_grad():
        (maps, ) = head(det.extract_feat(torch.rand(1, 3, size, size)))
        # class logits falling strictly over mmdet's location order, so that the head's
        # top-k sort (filter_scores_and_topk) keeps every location in that order
        counts = [m.shape[-2] * m.shape[-1] * head.num_base_priors for m in maps]
        flat = torch.cat([m.permute(0, 2, 3, 1).reshape(1, -1, head.num_attrib) for m in maps],
                         1)
        flat[..., 5] = torch.linspace(6, -6, sum(counts))
        maps = [chunk.reshape(1, *m.shape[-2:], -1).permute(0, 3, 1, 2).contiguous()
                for m, chunk in zip(maps, flat.split(counts, 1))]
        dense = dense_predictions(head, (maps, ))
        no_post_process(head)
        cfg = ConfigDict(nms_pre=sum(counts), score_thr=-1.0, conf_thr=-1.0)
        own = head.predict_by_feat([m.clone() for m in maps], batch_img_metas=[dict()],
                                   cfg=cfg, rescale=False)[0]
    assert dense.boxes.shape == (1, sum(counts), 4) and len(own.bboxes) == sum(counts)
    torch.testing.assert_close(dense.boxes[0], own.bboxes)
    # multiclass_nms multiplies the class score by the objectness (score factor)
    torch.testing.assert_close(dense.class_probs()[0].reshape(-1),
                               own.scores * own.score_factors)


@pytest.mark.parametrize('make', [yolox, yolov3])
def test_yolo_family_distils_like_the_other_dense_heads(make):
    detector, pre, size = make()
    torch.manual_seed(0)
    model = MODELS.build(dict(type='DetKDMLDistiller', teacher=detector,
                              students=[detector, detector], data_preprocessor=pre,
                              feature_kd=dict(type='pkd', levels=(0, ))))
    model.init_weights()
    assert model.box_region == 'confident'  # their assignment is not read
    x, samples = tiny_det_batch(n=1, size=size)
    losses = model.loss(x, samples)
    keys = {f'student{k}.loss_{kind}_{term}' for k in (0, 1) for kind in ('kd', 'ml')
            for term in ('cls', 'box')} | {'student0.loss_kd_feat', 'student1.loss_kd_feat'}
    assert keys <= set(losses)
    assert not any('_ld' in k for k in losses)
    total, _ = model.parse_losses(losses)
    total.backward()
    assert torch.isfinite(total)
    # the class KD reaches the student's objectness branch too (score = class × objectness)
    head = model.students[0].bbox_head
    grads = [p.grad for n, p in head.named_parameters() if 'obj' in n or 'convs_pred' in n]
    assert grads and any(g is not None and torch.count_nonzero(g) for g in grads)


def test_cross_head_kd_is_refused_for_yolo():
    detector, pre, _ = yolox()
    with pytest.raises(ValueError, match=r'model.cross_kd \(layer=0\) cannot pass the head '
                                         r'features of model.students\[0\] through the head '
                                         r'of model.teacher: YOLOXHead does not run plain'):
        MODELS.build(dict(type='DetKDMLDistiller', teacher=detector, students=[detector],
                          data_preprocessor=pre, ml_weight=0, cross_kd=dict(layer=0)))


def test_yolov3_per_level_channels_get_per_level_adapters():
    student, pre, size = yolov3()
    teacher, _, _ = yolov3()
    teacher['neck']['out_channels'] = [64, 64, 32]  # levels 1 and 2 wider than the students'
    teacher['bbox_head']['in_channels'] = [64, 64, 32]
    torch.manual_seed(0)
    model = MODELS.build(dict(type='DetKDMLDistiller', teacher=teacher, students=[student],
                              data_preprocessor=pre, ml_weight=0,
                              feature_kd=dict(type='cwd', levels=(0, 2))))
    adapter = model.adapters['student0']['teacher']
    assert isinstance(adapter[0], torch.nn.Identity)  # 64 = 64 at level 0
    assert (adapter[1].in_channels, adapter[1].out_channels) == (16, 32)  # level 2
    x, samples = tiny_det_batch(n=1, size=size)
    assert torch.isfinite(model.loss(x, samples)['student0.loss_kd_feat'])
