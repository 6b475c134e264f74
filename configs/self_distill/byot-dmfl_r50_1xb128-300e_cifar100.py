_base_ = [
    '../_base_/models/multi_exit_r50.py', '../_base_/datasets/cifar100.py',
    '../_base_/schedules/sgd_300e_cifar.py', '../_base_/default_runtime.py'
]
# Paper A Table 1: r50 + DMFL + BYOT.
model = dict(dmfl=dict(), byot=dict())
