_base_ = './kdml_r152-to-r50-r34_1xb16-30e_cifar100.py'
# Paper B V1 baseline: KD from the teacher only, no mutual learning.
model = dict(ml_weight=0.0)
