_base_ = '../kvasir_kdml_v2.py'
# Paper B V2 on Kvasir-SEG, offline KD + ML: train the teacher first with
#   python tools/train.py configs/kvasir/kvasir_det-teacher_r152.py
# then it is frozen (eval mode, no gradient, not in the optimiser).
model = dict(
    teacher_mode='offline',
    teacher_ckpt='work_dirs/kvasir_det-teacher_r152/epoch_30.pth')
# A trained teacher: distil at full weight from the first iteration (no ramp).
custom_hooks = []
