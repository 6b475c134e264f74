"""Every one-stage config mmdet 3.3 ships, as teacher + 2 students: it trains one iteration
with boxes decoded exactly as the head's own predict path decodes them, or it is refused while
the model is built, with one message naming the config key, the head type and the supported
heads.

"One-stage" and the shrinking are ``mmkd.testing.mmdet_configs``'s: a config whose ``model``
has a ``bbox_head`` and no ``rpn_head`` / ``roi_head``; the backbone is replaced by a ResNet-18
of 16 base channels (``init_cfg=None``), neck and head narrowed to 64 channels and one stacked
conv, one class, 64 px images (larger where a head needs it), batch 1. Configs whose light
models differ only in normalisation, ``test_cfg`` or widths (schedules and datasets are
outside ``model``) are one group, and one config of each group runs.
"""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData
from torch.nn.modules.batchnorm import _BatchNorm

from mmkd.models.utils import SUPPORTED_HEADS, dense_predictions
from mmkd.registry import MODELS
from mmkd.testing.mmdet_configs import group_configs, light_detector, one_stage_configs

# The expected outcome of every head type in mmdet 3.3's one-stage configs (README table).
TRAINS = {
    'ATSSHead', 'AutoAssignHead', 'DDODHead', 'FCOSHead', 'FSAFHead', 'FreeAnchorRetinaHead',
    'GFLHead', 'NASFCOSHead', 'PAAHead', 'PISARetinaHead', 'PISASSDHead', 'RTMDetSepBNHead',
    'RetinaHead', 'RetinaSepBNHead', 'SSDHead', 'TOODHead', 'VFNetHead', 'YOLOFHead',
    'YOLOV3Head', 'YOLOXHead'
}
REFUSED = {
    'ATSSVLFusionHead', 'BoxInstBboxHead', 'CenterNetHead', 'CenterNetUpdateHead',
    'CentripetalHead', 'CondInstBboxHead', 'ConditionalDETRHead', 'CornerHead', 'DABDETRHead',
    'DDQDETRHead', 'DETRHead', 'DINOHead', 'DeformableDETRHead', 'FoveaHead', 'GARetinaHead',
    'GroundingDINOHead', 'LADHead', 'LDHead', 'RTMDetInsSepBNHead', 'RepPointsHead',
    'SABLRetinaHead', 'YOLACTHead'
}
# v3det's FCOS scores its 13,204 classes through FocalCustomLoss's own activation.
REFUSED_LOSSES = {'FocalCustomLoss'}

CONFIGS = one_stage_configs()
GROUPS = group_configs(CONFIGS)


pytestmark = pytest.mark.usefixtures('one_thread')  # tests/test_integration/conftest.py


def expected_refusal(model: dict) -> bool:
    head = model['bbox_head']
    return head['type'] in REFUSED or head.get('loss_cls', {}).get('type') in REFUSED_LOSSES


def test_every_packaged_head_type_has_an_expected_outcome():
    heads = {m['bbox_head']['type'] for m in CONFIGS.values()}
    assert heads == TRAINS | REFUSED
    assert TRAINS <= set(SUPPORTED_HEADS)
    assert {'VFNetHead', 'PAAHead', 'TOODHead', 'DDODHead', 'RTMDetSepBNHead', 'SSDHead'} <= TRAINS
    assert {'DeformableDETRHead', 'DINOHead', 'CenterNetUpdateHead'} <= REFUSED
    assert {'YOLOXHead', 'YOLOV3Head'} <= TRAINS
    assert sum(len(paths) for paths in GROUPS.values()) == len(CONFIGS) > 300


def ramp_cls_maps(cls_scores, channels: int, probabilities: bool):
    """Class maps shaped like ``cls_scores`` whose first class falls strictly over mmdet's
    flattened location order (the other channels 0: SSD's background), so that the head's
    per-level top-k keeps every location in that order."""
    counts = [m.shape[1] // channels * m.shape[2] * m.shape[3] for m in cls_scores]
    flat = torch.zeros(sum(counts), channels)
    flat[:, 0] = torch.linspace(6, -6, sum(counts))
    if probabilities:  # TOOD outputs probabilities
        flat[:, 0] = flat[:, 0].sigmoid()
    maps = []
    for m, chunk in zip(cls_scores, flat.split(counts)):
        maps.append(chunk.reshape(1, *m.shape[2:], -1).permute(0, 3, 1, 2).contiguous())
    return maps, len(flat)


def assert_decodes_like_predict_by_feat(det, size: int) -> None:
    """mmkd's decoding of the training-mode outputs == the head's own ``predict_by_feat``
    (eval-mode outputs of the same features and weights) before its post-processing:
    no NMS, score threshold or top-k cut, no clipping (``img_shape=None``)."""
    head = det.bbox_head
    det.train()
    for m in det.modules():  # the same BN statistics in both forwards
        if isinstance(m, _BatchNorm):
            m.eval()
    with torch.no_grad():
        feats = det.extract_feat(torch.rand(1, 3, size, size))
        outs = head(feats)
        cls_maps, n = ramp_cls_maps(outs[0], head.cls_out_channels,
                                    type(head).__name__ == 'TOODHead')
        dense = dense_predictions(head, (cls_maps, *outs[1:]))
        head.training = False  # the head's own eval-mode outputs (FCOS strides, VFNet refine)
        eval_outs = head(feats)
        head._bbox_post_process = lambda results, *args, **kwargs: results
        cfg = ConfigDict(nms_pre=n, score_thr=-1.0, max_per_img=n,
                         nms=dict(type='nms', iou_threshold=0.5))
        own = head.predict_by_feat(cls_maps, *eval_outs[1:], cfg=cfg, rescale=False,
                                   batch_img_metas=[dict(img_shape=None,
                                                         scale_factor=(1., 1.))])[0]
    del head._bbox_post_process
    assert len(own.bboxes) == n == dense.boxes.shape[1]
    torch.testing.assert_close(dense.boxes[0], own.bboxes)
    torch.testing.assert_close(dense.class_probs()[0].reshape(-1), own.scores.reshape(-1))


def one_image(size: int) -> dict:
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                         scale_factor=(1.0, 1.0)))
    box = torch.tensor([[10., 12., 40., 50.]]) * size / 64
    sample.gt_instances = InstanceData(bboxes=box, labels=torch.tensor([0]))
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
    return dict(inputs=[image], data_samples=[sample])


# light_detector cannot narrow YOLOV3Neck (per-level channel lists, deepest first): the YOLOv3
# configs are decoded and trained with a hand-made tiny YOLOv3 in
# tests/test_models/test_utils/test_yolo_dense_predictions.py.
OWN_TEST = {'YOLOV3Head'}


@pytest.mark.parametrize('path', sorted(p for p in GROUPS
                                        if CONFIGS[p]['bbox_head']['type'] not in OWN_TEST))
def test_packaged_config_trains_or_is_refused_at_build(path, epoch_info):
    detector, preprocessor, size = light_detector(CONFIGS[path])
    detector.pop('init_cfg', None)  # ByteTrack's YOLOX: a pretrained checkpoint to download
    cfg = dict(type='DetKDMLDistiller', teacher=detector, students=[detector, detector],
               data_preprocessor=preprocessor)
    head = detector['bbox_head']['type']
    if expected_refusal(detector):
        with pytest.raises(ValueError) as error:
            MODELS.build(cfg)
        message = str(error.value)
        assert message.startswith(f"model.teacher.bbox_head.type = '{head}' cannot be "
                                  'distilled by DetKDMLDistiller (')
        assert message.endswith(f'dense heads {", ".join(SUPPORTED_HEADS)}')
        return
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()  # the heads' own initialisation (prior-probability biases, ...)
    assert_decodes_like_predict_by_feat(model.teacher, size)
    epoch_info(0, 1)  # TOOD switches assigners by the epoch mmengine's loop puts in the hub
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-4))
    log = model.train_step(one_image(size), optim)
    assert {'student0.loss_kd_cls', 'student0.loss_kd_box', 'student1.loss_ml_cls',
            'student1.loss_ml_box'} <= set(log)
    assert any(k.startswith('teacher.') and 'loss' in k for k in log)  # mmdet's own losses
    assert all(torch.isfinite(v) for v in log.values()), log
