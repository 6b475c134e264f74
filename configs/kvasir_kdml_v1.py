_base_ = [
    './_base_/datasets/kvasir_seg.py', './_base_/schedules/sgd_30e_kvasir.py',
    './_base_/schedules/distill_ramp.py', './_base_/default_runtime.py'
]
# Paper B Table 1 V1 on Kvasir-SEG polyp detection, online KD + mutual learning:
# resnet152 teacher -> resnet50 + resnet34 students, each an mmdet GFL detector (FPN strides
# 8-128) on its own torchvision backbone; box regression is distilled too (decoded-box L1 +
# GIoU weighted by the target's confidence, and LD on GFL's side distributions).
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
model = dict(
    type='DetKDMLDistiller',
    teacher=dict(
        base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
        backbone=dict(
            _delete_=True,
            type='TorchvisionBackbone',
            arch='resnet152',
            out_indices=(1, 2, 3),
            pretrained=pretrained),
        neck=dict(in_channels=[512, 1024, 2048], start_level=0),
        bbox_head=dict(num_classes=1)),
    students=[
        dict(
            base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
            backbone=dict(
                _delete_=True,
                type='TorchvisionBackbone',
                arch='resnet50',
                out_indices=(1, 2, 3),
                pretrained=pretrained),
            neck=dict(in_channels=[512, 1024, 2048], start_level=0),
            bbox_head=dict(num_classes=1)),
        dict(
            base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
            backbone=dict(
                _delete_=True,
                type='TorchvisionBackbone',
                arch='resnet34',
                out_indices=(1, 2, 3),
                pretrained=pretrained),
            neck=dict(in_channels=[128, 256, 512], start_level=0),
            bbox_head=dict(num_classes=1)),
    ],
    teacher_mode='online',
    det_weight=1.0,
    kd_weight=0.45,
    ml_weight=0.45,
    ensemble='nms',
    predict_on='ensemble',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32))
