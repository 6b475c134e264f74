# Kvasir-SEG polyp detection (images/, masks/, kavsir_bboxes.json; data/README.md). The
# official 880/120 split lists train.txt / val.txt are used when present under data_root.
dataset_type = 'KvasirSegDataset'
data_root = 'data/kvasir-seg/Kvasir-SEG/'
img_scale = (512, 512)

# LoadImageChecked is mmcv's LoadImageFromFile that fails on a corrupt or truncated image with
# an error naming the file, whatever the OpenCV version (mmkd/datasets/transforms/).

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
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='kavsir_bboxes.json',
                 split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='kavsir_bboxes.json',
                 split='val', test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader

# mIoU of the top-scoring box per image, Acc@0.5 and COCO AP / AP50, for every model.
val_evaluator = dict(type='DetIoUMetric', iou_thr=0.5, with_coco=True)
test_evaluator = val_evaluator
