_base_ = [
    '../_base_/models/kdml_v1_msi.py', '../_base_/datasets/msi_tiles.py',
    '../_base_/schedules/sgd_30e_kdml.py', '../_base_/schedules/distill_ramp.py',
    '../_base_/default_runtime.py'
]
# Paper B Table 1 V1, online KD + ML: teacher and students train together.
