_base_ = [
    '../_base_/models/multi_exit_r18.py', '../_base_/datasets/cifar100.py',
    '../_base_/schedules/sgd_300e_cifar.py', '../_base_/default_runtime.py'
]
# Paper A Table 4: full method on the first N = 2 stages (exit 1 distilled from exit 2).
model = dict(
    backbone=dict(num_stages=2), pskd=dict(alpha_t=0.8), dmfl=dict(), byot=dict())
