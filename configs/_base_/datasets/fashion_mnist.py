# Fashion-MNIST from the real IDX files (Debian package dataset-fashion-mnist; data/README.md).
# Grey 28x28 is zero-padded to 32x32 and repeated to 3 channels (FashionMNISTDataset docstring),
# so CIFAR networks and the model's ClsDataPreprocessor (crop 32 / pad 4, flip) run unchanged;
# its train-split statistics are mean 55.84, std 84.61 for each channel (0-255 units).
# data_root is written out so that --data-root overrides it.
dataset_type = 'FashionMNISTDataset'
data_root = '/usr/share/datasets/fashion-mnist/'

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, test_mode=False))
val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, test_mode=True))
test_dataloader = val_dataloader

val_evaluator = dict(type='MultiModelClsMetric', topk=(1, 5), num_bins=10)
test_evaluator = val_evaluator
