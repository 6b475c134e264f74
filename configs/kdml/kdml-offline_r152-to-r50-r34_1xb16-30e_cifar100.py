_base_ = './kdml_r152-to-r50-r34_1xb16-30e_cifar100.py'
# Paper B V1, offline KD + ML: the teacher is trained first by
#   python tools/train.py configs/kdml/classifier_r152_1xb16-30e_cifar100.py
# then frozen (eval mode, no gradient, not in the optimiser).
model = dict(
    teacher_mode='offline',
    teacher_ckpt='work_dirs/classifier_r152_1xb16-30e_cifar100/epoch_30.pth')
# A trained teacher: distil at full weight from the first iteration (no ramp).
custom_hooks = []
