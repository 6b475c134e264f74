_base_ = [
    '../_base_/models/multi_exit_r18.py', '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/sgd_300e_cifar.py', '../_base_/default_runtime.py'
]
# Paper A's multi-exit CIFAR ResNet-18 sized for 2 CPU cores: base width 8 (an eighth of the
# paper's 64: 1/64 of the multiply-adds), Fashion-MNIST padded to 32x32, a 6,000-image seeded
# class-balanced training subset, 5 epochs with paper A's step schedule scaled (x0.1 at 1/2 and
# 3/4 of the epochs, rounded up: epochs 3 and 4). The full 10,000-image test split is always scored. No PS-KD / BYOT /
# DMFL here: tools/reproduce_fashion_mnist.py sets each row's (paper A Table 1 / 2 rows).
# The paper-scale recipe is `--full` of that tool (width 64, all 60,000 images, 300 epochs).
model = dict(
    backbone=dict(base_channels=8),
    num_classes=10,
    data_preprocessor=dict(mean=[55.84] * 3, std=[84.61] * 3))
train_dataloader = dict(dataset=dict(subset_size=6000, subset_seed=0))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[3, 4], gamma=0.1)]
train_cfg = dict(max_epochs=5, val_interval=5)
