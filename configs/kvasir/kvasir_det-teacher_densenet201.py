_base_ = [
    '../_base_/datasets/kvasir_seg.py', '../_base_/schedules/sgd_30e_kvasir.py',
    '../_base_/default_runtime.py'
]
# The Kvasir-SEG GFL teacher (densenet201) trained alone: its checkpoint feeds the offline configs.
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
_teacher = dict(
    base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    backbone=dict(
        _delete_=True,
        type='TorchvisionBackbone',
        arch='densenet201',
        out_indices=(1, 2, 3),
        pretrained=pretrained),
    neck=dict(in_channels=[512, 1792, 1920], start_level=0),
    bbox_head=dict(num_classes=1))
# model=dict(base=...) is expanded by tools/train.py and tools/test.py (mmkd.utils.resolve_model).
model = dict(_teacher, data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32))
val_evaluator = dict(model_name='teacher')
test_evaluator = dict(model_name='teacher')
