_base_ = [
    '../_base_/models/multi_exit_preact_r18.py', '../_base_/datasets/cifar100.py',
    '../_base_/schedules/sgd_300e_cifar.py', '../_base_/default_runtime.py'
]
# PS-KD paper parity: PreAct ResNet-18 + PS-KD (alpha_T = 0.8).
model = dict(pskd=dict(alpha_t=0.8))
