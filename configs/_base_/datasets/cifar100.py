# CIFAR-100 from the python pickles under data_root/cifar-100-python/ (data/README.md).
# Augmentation (random crop 32 / pad 4, flip) and normalisation run batch-wise in the model's
# ClsDataPreprocessor; the dataset only decodes.
dataset_type = 'CIFAR100Dataset'
data_root = 'data/cifar100/'

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train'))
val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='test'))
test_dataloader = val_dataloader

val_evaluator = dict(type='MultiModelClsMetric', topk=(1, 5), num_bins=10)
test_evaluator = val_evaluator
