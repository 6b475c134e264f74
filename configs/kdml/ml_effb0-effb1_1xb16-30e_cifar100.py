_base_ = './kdml_densenet201-to-effb0-effb1_1xb16-30e_cifar100.py'
# Paper B V3 baseline: mutual learning of the students only, no teacher.
model = dict(teacher=None)
