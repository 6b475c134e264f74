_base_ = './kdml_densenet201-to-effb0-effb1_1xb16-30e_msi.py'
# Paper B V3, offline KD + ML: the teacher is trained first by
#   python tools/train.py configs/kdml/classifier_densenet201_1xb16-30e_msi.py
# then frozen (eval mode, no gradient, not in the optimiser).
model = dict(
    teacher_mode='offline',
    teacher_ckpt='work_dirs/classifier_densenet201_1xb16-30e_msi/epoch_30.pth')
# A trained teacher: distil at full weight from the first iteration (no ramp).
custom_hooks = []
