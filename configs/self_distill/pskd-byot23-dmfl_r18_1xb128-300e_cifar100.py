_base_ = [
    '../_base_/models/multi_exit_r18.py', '../_base_/datasets/cifar100.py',
    '../_base_/schedules/sgd_300e_cifar.py', '../_base_/default_runtime.py'
]
# Paper A Table 3: full method, BYOT losses on exits {2, 3} only.
model = dict(pskd=dict(alpha_t=0.8), dmfl=dict(), byot=dict(exits=(2, 3)))
