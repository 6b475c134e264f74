_base_ = [
    '../_base_/models/multi_exit_r50.py', '../_base_/datasets/cifar100.py',
    '../_base_/schedules/sgd_300e_cifar.py', '../_base_/default_runtime.py'
]
# Paper A Table 1: r50 + DMFL + BYOT.
# DMFL as the authors ran it, WITHOUT gradient (model.dmfl.legacy_no_grad=True): the reference
# code built the term with torch.tensor(list), which drops its autograd history (SPEC §4.2),
# so it was logged but trained nothing; the published numbers come from this objective.
# With the gradient the paper describes: byot-dmflgrad_r50_1xb128-300e_cifar100.py.
model = dict(dmfl=dict(legacy_no_grad=True), byot=dict())
