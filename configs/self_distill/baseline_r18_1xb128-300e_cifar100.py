_base_ = [
    '../_base_/models/multi_exit_r18.py', '../_base_/datasets/cifar100.py',
    '../_base_/schedules/sgd_300e_cifar.py', '../_base_/default_runtime.py'
]
# Paper A Table 1: r18 baseline (exits 1-3 are built but receive no loss).
