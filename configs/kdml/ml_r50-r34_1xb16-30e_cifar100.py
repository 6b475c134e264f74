_base_ = './kdml_r152-to-r50-r34_1xb16-30e_cifar100.py'
# Paper B V1 baseline: mutual learning of the students only, no teacher.
model = dict(teacher=None)
