_base_ = [
    '../_base_/datasets/fashion_mnist.py', '../_base_/schedules/sgd_30e_kdml.py',
    '../_base_/schedules/distill_ramp.py', '../_base_/default_runtime.py'
]
# Paper B's classification KD + ML (online, one teacher -> two students, max-ensemble) on
# Fashion-MNIST, sized for 2 CPU cores: a CIFAR ResNet-18 of base width 16 teaches two of width
# 8 (1/4 of its multiply-adds each), a 6,000-image seeded class-balanced training subset,
# 4 epochs, batch 64, paper B's SGD (lr 0.01 x 4 for batch 64, momentum 0.9) and loss weights.
# tools/reproduce_fashion_mnist.py derives the compared variants (students alone, KD, ML, KD+ML
# online / offline); `--full` there runs all 60,000 images for 30 epochs.
model = dict(
    type='KDMLDistiller',
    teacher=dict(type='ImageClassifier', num_classes=10,
                 backbone=dict(type='CIFARResNet', depth=18, base_channels=16)),
    students=[
        dict(type='ImageClassifier', num_classes=10,
             backbone=dict(type='CIFARResNet', depth=18, base_channels=8)),
        dict(type='ImageClassifier', num_classes=10,
             backbone=dict(type='CIFARResNet', depth=18, base_channels=8)),
    ],
    teacher_mode='online',
    cls_weight=0.1,
    kd_weight=0.45,
    ml_weight=0.45,
    temperature=2.0,
    peer_kl_direction='peer_to_self',
    ensemble='max',
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[55.84] * 3, std=[84.61] * 3,
                           pad=4, flip=True))
train_dataloader = dict(batch_size=64, dataset=dict(subset_size=6000, subset_seed=0))
optim_wrapper = dict(optimizer=dict(lr=0.04))
auto_scale_lr = dict(base_batch_size=64)
train_cfg = dict(max_epochs=4, val_interval=4)
# KD and ML weights ramped in over the first epoch (a quarter of the run).
custom_hooks = [dict(type='DistillScheduleHook', ramp='linear', begin=0, end=1, by_epoch=True)]
