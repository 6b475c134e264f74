_base_ = [
    '../_base_/models/multi_exit_r18.py', '../_base_/datasets/cifar100.py',
    '../_base_/schedules/sgd_300e_cifar.py', '../_base_/default_runtime.py'
]
# Paper A Table 4: full method on the first N = 3 stages.
# Built as the reference models/resnet_BYOT.py builds it (num_resnet_blocks=3):
# a branch exit on each of the 3 stages, the last one included, with the 4-stage
# network's branch strides (8, 4, 2), and the classifier on stage 3 as exit 4.
# BYOT trains exits 1-3; DMFL pairs exits 1-2 with the classifier's feature.
# DMFL as the authors ran it, WITHOUT gradient (model.dmfl.legacy_no_grad=True): the reference
# code built the term with torch.tensor(list), which drops its autograd history (SPEC §4.2),
# so it was logged but trained nothing; the published numbers come from this objective.
# With the gradient the paper describes: pskd-byot-dmflgrad_r18-3stages_1xb128-300e_cifar100.py.
model = dict(
    backbone=dict(num_stages=3),
    branch_on_last_stage=True,
    branch_strides=(8, 4, 2),
    pskd=dict(alpha_t=0.8),
    dmfl=dict(legacy_no_grad=True),
    byot=dict())
