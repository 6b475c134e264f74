_base_ = [
    '../_base_/datasets/kvasir_seg.py', '../_base_/schedules/sgd_30e_kvasir.py',
    '../_base_/schedules/distill_ramp.py', '../_base_/default_runtime.py'
]
# Paper B V1 in its own setting: classification backbones regressing one box + confidence
# per image (SPEC §5.3 mode R), online KD + ML in box space (L1 + 1 - GIoU), alpha/beta/gamma
# = 0.1/0.45/0.45. Images are resized to a fixed 224 x 224.
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
model = dict(
    type='SingleBoxKDMLDistiller',
    teacher=dict(
        type='SingleBoxRegressor',
        backbone=dict(type='TorchvisionBackbone', arch='resnet152', pretrained=pretrained)),
    students=[
        dict(
            type='SingleBoxRegressor',
            backbone=dict(type='TorchvisionBackbone', arch='resnet50', pretrained=pretrained)),
        dict(
            type='SingleBoxRegressor',
            backbone=dict(type='TorchvisionBackbone', arch='resnet34', pretrained=pretrained)),
    ],
    gt_weight=0.1,
    kd_weight=0.45,
    ml_weight=0.45,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32))
_train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
_test_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=_train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_test_pipeline))
test_dataloader = val_dataloader
