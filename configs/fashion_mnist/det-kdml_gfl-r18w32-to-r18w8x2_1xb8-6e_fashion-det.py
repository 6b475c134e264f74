_base_ = [
    '../_base_/datasets/kvasir_seg.py', '../_base_/schedules/sgd_30e_kvasir.py',
    '../_base_/schedules/distill_ramp.py', '../_base_/default_runtime.py'
]
# Paper B's detection KD + ML (DetKDMLDistiller, online GFL teacher -> two GFL students, NMS
# max-ensemble) on the Fashion-MNIST detection set: real articles placed on a texture, written
# in the exact Kvasir-SEG layout by tools/data/make_fashion_det.py, so the real
# KvasirSegDataset loader and the main job's pipeline run. Sized for 2 CPU cores: mmdet
# ResNet-18 backbones of base width 32 (teacher) and 8 (students: 1/16 of its multiply-adds),
# 32-channel FPN and one conv per head branch, 96 px, the first 500 training images, 6 epochs,
# batch 8; all 200 validation images are scored. From scratch (no
# ImageNet weights on these machines). tools/reproduce_fashion_mnist.py derives the compared
# variants; its `--full` uses all 1,000 training images and 30 epochs.
data_root = 'data/fashion_det/'
img_scale = (96, 96)


def _gfl(width):
    return dict(
        base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
        backbone=dict(_delete_=True, type='ResNet', depth=18, base_channels=width,
                      num_stages=4, out_indices=(1, 2, 3), norm_cfg=dict(type='BN'),
                      norm_eval=False, style='pytorch', init_cfg=None),
        # start_level=0: the FPN starts at C3 (stride 8) as GFL's priors assume.
        neck=dict(in_channels=[width * 2, width * 4, width * 8], out_channels=32,
                  start_level=0),
        bbox_head=dict(num_classes=1, in_channels=32, feat_channels=32, stacked_convs=1),
        test_cfg=dict(score_thr=0.001))


model = dict(
    type='DetKDMLDistiller',
    teacher=_gfl(32),
    students=[_gfl(8), _gfl(8)],
    teacher_mode='online',
    det_weight=1.0,
    kd_weight=0.45,
    ml_weight=0.45,
    ensemble='nms',
    predict_on='ensemble',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32))
train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root, indices=500,
                                                   pipeline=train_pipeline))
val_dataloader = dict(batch_size=16, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
param_scheduler = [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=30)]
train_cfg = dict(max_epochs=6, val_interval=6)
# KD and ML weights ramped in over the first epoch.
custom_hooks = [dict(type='DistillScheduleHook', ramp='linear', begin=0, end=1, by_epoch=True)]
