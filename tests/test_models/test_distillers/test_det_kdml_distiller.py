import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.hub import get_config
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

from mmkd.models.distillers import base_kdml_distiller
from mmkd.models.losses import box_kd_loss, kd_kl_div_loss, ld_kd_loss, sigmoid_kd_loss
from mmkd.models.utils import SUPPORTED_HEADS, dense_predictions
from mmkd.registry import MODELS
from mmkd.testing import tiny_det_batch, tiny_det_distiller, tiny_detector
from mmkd.testing.mmdet_configs import light_detector

build = tiny_det_distiller
batch = tiny_det_batch


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


class TestDetKDMLDistiller:

    @pytest.mark.parametrize('head,own', [
        ('gfl', {'loss_cls', 'loss_bbox', 'loss_dfl'}),
        ('retinanet', {'loss_cls', 'loss_bbox'}),
        ('fcos', {'loss_cls', 'loss_bbox', 'loss_centerness'}),
        ('atss', {'loss_cls', 'loss_bbox', 'loss_centerness'}),
    ])
    def test_loss_keys(self, head, own):
        keys = set(build(head).loss(*batch()))
        terms = ['cls', 'box'] + (['ld'] if head == 'gfl' else [])
        expected = {f'teacher.{k}' for k in own}
        for s in ('student0', 'student1'):
            expected |= {f'{s}.{k}' for k in own}
            expected |= {f'{s}.loss_{kind}_{t}' for kind in ('kd', 'ml') for t in terms}
        assert keys == expected

    def test_baselines(self):
        assert not any('_ml_' in k for k in build(ml_weight=0).loss(*batch()))
        keys = set(build(teacher=None).loss(*batch()))
        assert not any(k.startswith('teacher') or '_kd_' in k for k in keys)

    def test_kd_terms_match_the_pure_losses(self):
        model = build(box_region='all')
        x, samples = batch()
        losses = model.loss(x, samples)
        dense = {}
        for name, det in model.named_models().items():
            outs = det.bbox_head(det.extract_feat(x))
            dense[name] = dense_predictions(det.bbox_head, outs)
        s, t = dense['student0'], dense['teacher']
        conf = t.cls_logits.flatten(0, 1).sigmoid().max(1).values
        scale = torch.tensor([64., 64., 64., 64.])
        torch.testing.assert_close(losses['student0.loss_kd_cls'], 0.45 * sigmoid_kd_loss(
            s.cls_logits.flatten(0, 1), t.cls_logits.flatten(0, 1)))
        torch.testing.assert_close(losses['student0.loss_kd_box'], 0.45 * box_kd_loss(
            (s.boxes / scale).flatten(0, 1), (t.boxes / scale).flatten(0, 1), conf))
        torch.testing.assert_close(losses['student0.loss_kd_ld'], 0.45 * 0.25 * ld_kd_loss(
            s.dists.flatten(0, 1), t.dists.flatten(0, 1), conf))

    def test_students_send_no_gradient_to_teacher_or_peers(self):
        model = build()
        losses = model.loss(*batch())
        total = sum(v for k, v in losses.items() if k.startswith('student0') and
                    ('_kd_' in k or '_ml_' in k))
        total.backward()
        assert all(p.grad is None for p in model.teacher.parameters())
        assert all(p.grad is None for p in model.students[1].parameters())
        grads = [p.grad for p in model.students[0].bbox_head.parameters() if p.grad is not None]
        assert grads and any(torch.count_nonzero(g) for g in grads)

    def test_offline_teacher_frozen_online_teacher_trains(self, tmp_path):
        online = build()
        torch.save({'state_dict': online.teacher.state_dict()}, tmp_path / 't.pth')
        offline = build(teacher_mode='offline', teacher_ckpt=str(tmp_path / 't.pth'))
        x, samples = batch()
        for model, teacher_moves in ((online, True), (offline, False)):
            optim = OptimWrapper(torch.optim.SGD(
                [p for p in model.parameters() if p.requires_grad], lr=0.01))
            before_t, before_s = snapshot(model.teacher), snapshot(model.students[0])
            model.train()
            model.train_step(dict(inputs=x * 255, data_samples=samples), optim)
            moved = any(not torch.equal(a, b) for a, b in zip(before_t, snapshot(model.teacher)))
            assert moved == teacher_moves
            assert any(not torch.equal(a, b)
                       for a, b in zip(before_s, snapshot(model.students[0])))
        assert not offline.teacher.training

    @pytest.mark.parametrize('student,match', [
        (tiny_detector('retinanet', 8), r'model.students\[1\].bbox_head.type'),
        (dict(tiny_detector('gfl', 8), bbox_head=dict(num_classes=3, in_channels=32,
                                                      feat_channels=32, stacked_convs=1)),
         r'model.students\[1\].bbox_head.cls_out_channels = 3'),
        (dict(tiny_detector('gfl', 8), bbox_head=dict(
            num_classes=1, in_channels=32, feat_channels=32, stacked_convs=1,
            anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8,
                                  scales_per_octave=1, strides=[4, 8, 16, 32, 64]))),
         r'prior_generator.strides'),
    ])
    def test_geometry_mismatch_names_the_setting(self, student, match):
        with pytest.raises(ValueError, match=match):
            build(students=[tiny_detector('gfl', 8), student])

    def test_predict_gives_every_model_and_the_ensemble(self):
        model = build().eval()
        x, samples = batch()
        out = model.predict(x, samples)
        assert set(out[0].model_preds) == {'teacher', 'student0', 'student1', 'ensemble'}
        assert out[0].pred_instances is out[0].model_preds['ensemble']
        pooled = torch.cat([out[0].model_preds[s].scores for s in ('student0', 'student1')])
        if len(pooled):  # the ensemble keeps the best box of any student
            assert out[0].pred_instances.scores.max() == pooled.max()

    def test_unsupported_head_is_refused_before_any_model_is_built(self, monkeypatch):
        def no_build(*args, **kwargs):
            raise AssertionError('a model was built before the head check')

        monkeypatch.setattr(base_kdml_distiller, 'build_model_cfg', no_build)
        centernet = dict(base='mmdet::centernet/centernet-update_r50-caffe_fpn_ms-1x_coco.py',
                         backbone=dict(init_cfg=None), bbox_head=dict(num_classes=1))
        with pytest.raises(ValueError) as error:
            build(students=[tiny_detector('gfl', 8), centernet])
        assert str(error.value) == (
            "model.students[1].bbox_head.type = 'CenterNetUpdateHead' cannot be distilled by "
            'DetKDMLDistiller (not a dense head whose boxes mmkd decodes): teacher and '
            'students must be one-stage detectors with one of the dense heads '
            f'{", ".join(SUPPORTED_HEADS)}')

    def test_two_stage_detector_is_refused_with_the_same_message(self):
        with pytest.raises(ValueError) as error:
            build(teacher='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
        assert str(error.value).startswith(
            "model.teacher.bbox_head.type = None cannot be distilled by DetKDMLDistiller "
            "(model.teacher.type = 'FasterRCNN' is not a one-stage detector with a "
            'bbox_head): teacher and students must be one-stage detectors with one of the '
            'dense heads ATSSHead, ')

    def test_softmax_head_distils_classes_with_a_softmax_kl(self):
        """SSD scores C classes + background with a softmax: its class KD is the softened
        softmax KL over the C + 1 channels, not per-class sigmoids."""
        ssd = get_config('mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py').model
        detector, pre, size = light_detector(ssd.to_dict())
        torch.manual_seed(0)
        model = MODELS.build(dict(type='DetKDMLDistiller', teacher=detector,
                                  students=[detector, detector], data_preprocessor=pre,
                                  box_region='all'))
        model.init_weights()
        x, samples = batch(n=1, size=size)
        losses = model.loss(x, samples)
        dense = {}
        for name, det in model.named_models().items():
            dense[name] = dense_predictions(det.bbox_head, det.bbox_head(det.extract_feat(x)))
        s, t = dense['student0'], dense['teacher']
        assert not s.use_sigmoid and s.cls_logits.shape[-1] == 2  # polyp + background
        torch.testing.assert_close(losses['student0.loss_kd_cls'], 0.45 * kd_kl_div_loss(
            s.cls_logits.flatten(0, 1), t.cls_logits.flatten(0, 1)))
        conf = t.cls_logits.flatten(0, 1).softmax(1)[:, 0]
        scale = torch.tensor([size] * 4, dtype=torch.float)
        torch.testing.assert_close(losses['student0.loss_kd_box'], 0.45 * box_kd_loss(
            (s.boxes / scale).flatten(0, 1), (t.boxes / scale).flatten(0, 1), conf))
