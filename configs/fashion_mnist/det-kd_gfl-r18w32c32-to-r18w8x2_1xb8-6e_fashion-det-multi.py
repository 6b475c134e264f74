_base_ = ['./det-kdml_gfl-r18w32-to-r18w8x2_1xb8-6e_fashion-det-multi.py']
# The detector-distillation comparison's starting point (tools/compare_detector_kd.py,
# docs/detector_kd.md): the multi-article Fashion-MNIST set and budget of the base config,
# with the teacher's FPN and head at the students' 32 channels (backbone still 4x wider, two
# head convs), so that cross-head KD can pass a student's head features through the teacher's
# head and PKD / CWD need no adapters. The tool derives every variant from this config.
model = dict(teacher=dict(neck=dict(out_channels=32),
                          bbox_head=dict(in_channels=32, feat_channels=32)))
