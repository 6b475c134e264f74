_base_ = './kdml_densenet201-to-effb0-effb1_1xb16-30e_msi.py'
# Paper B V3 baseline: KD from the teacher only, no mutual learning.
model = dict(ml_weight=0.0)
