_base_ = [
    '../_base_/models/multi_exit_rx50.py', '../_base_/datasets/cifar100.py',
    '../_base_/schedules/sgd_300e_cifar.py', '../_base_/default_runtime.py'
]
# Paper A Table 1: rx50 + DMFL + BYOT.
# BYOT on exit 3 only, as the reference run script does for ResNeXt-50 (BYOT_from_k_block=3).
model = dict(dmfl=dict(), byot=dict(exits=(3, )))
