# MSI-vs-MSS tiles (TCGA CRC): Kather's TRAIN/TEST folders or Kaggle's unsplit folders, split
# by patient (data/README.md). Flip augmentation and normalisation run in the model's
# ClsDataPreprocessor.
dataset_type = 'MSITileDataset'
data_root = 'data/msi/'

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', layout='auto',
                 img_size=224))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', layout='auto',
                 img_size=224))
test_dataloader = val_dataloader

# Two classes: top-5 is meaningless.
val_evaluator = dict(type='MultiModelClsMetric', topk=(1, ), num_bins=10)
test_evaluator = val_evaluator
