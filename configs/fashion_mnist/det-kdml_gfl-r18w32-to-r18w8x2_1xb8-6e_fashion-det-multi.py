_base_ = [
    '../_base_/schedules/sgd_30e_kvasir.py', '../_base_/schedules/distill_ramp.py',
    '../_base_/default_runtime.py'
]
# Paper B's detection KD + ML (DetKDMLDistiller, online GFL teacher -> two GFL students, NMS
# max-ensemble) on the multi-article Fashion-MNIST detection set (docs/fashion_det_multi.md):
# 1-4 real articles of the 10 classes per 128 px image, sides 16-64 px, partly hidden by each
# other, with unlabelled fragments, in COCO format, written by
#   python tools/data/make_fashion_det.py --multi --out data/fashion_det_multi
# Shrunk so that tools/compare_kdml.py's 6 trainings x 5 seeds fit 90 min on 2 CPU cores (one
# run <= ~5 min on one core) while the teacher alone still beats the students alone by >= 5
# AP (measured, seeds 0 / 1: teacher 22.8 / 23.0 AP, students' mean 15.4 / 14.5, AP50 <= 39;
# 285 / 269 CPU s for the teacher, 201 / 193 for the two students; 5 epochs gave a 4.8 gap on
# seed 0; docs/fashion_det_multi.md): mmdet ResNet-18s of base width 32 (teacher; 64-ch FPN,
# 2 convs per head branch) and 8 (students; 32-ch FPN, 1 conv), three FPN levels (strides
# 8-32; anchors of 32-128 px cover the 16-64 px articles), the native 128 px, all 1,000
# training images, 6 epochs of batch 8; all 200 validation images are scored. From scratch
# (no ImageNet weights on these machines).
data_root = 'data/fashion_det_multi/'
img_scale = (128, 128)
classes = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
           'Bag', 'Ankle boot')  # FASHION_MNIST_CLASSES, COCO category ids 1-10


def _gfl(width, channels, convs):
    return dict(
        base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
        backbone=dict(_delete_=True, type='ResNet', depth=18, base_channels=width,
                      num_stages=4, out_indices=(1, 2, 3), norm_cfg=dict(type='BN'),
                      norm_eval=False, style='pytorch', init_cfg=None),
        # start_level=0: the FPN starts at C3 (stride 8) as GFL's priors assume.
        neck=dict(in_channels=[width * 2, width * 4, width * 8], out_channels=channels,
                  start_level=0, num_outs=3),
        bbox_head=dict(num_classes=len(classes), in_channels=channels, feat_channels=channels,
                       stacked_convs=convs,
                       anchor_generator=dict(octave_base_scale=4, strides=[8, 16, 32])),
        test_cfg=dict(score_thr=0.001))


model = dict(
    type='DetKDMLDistiller',
    teacher=_gfl(32, 64, 2),
    students=[_gfl(8, 32, 1), _gfl(8, 32, 1)],
    teacher_mode='online',
    det_weight=1.0,
    kd_weight=0.45,
    ml_weight=0.45,
    ensemble='nms',
    predict_on='ensemble',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32))
dataset_type = 'CocoDataset'
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
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/train.json', data_prefix=dict(img='images/'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/val.json', data_prefix=dict(img='images/'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
# COCO AP / AP50 over the 10 classes are the main numbers; mIoU and acc50 read only each
# image's top-scoring box (its best IoU with any GT box, whatever the class).
val_evaluator = dict(type='DetIoUMetric', iou_thr=0.5, with_coco=True)
test_evaluator = val_evaluator
param_scheduler = [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=30)]
train_cfg = dict(max_epochs=6, val_interval=6)
# KD and ML weights ramped in over the first epoch.
custom_hooks = [dict(type='DistillScheduleHook', ramp='linear', begin=0, end=1, by_epoch=True)]
