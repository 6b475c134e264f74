"""Teacher and students that disagree in their number of classes fail at build time with the
config keys and values that differ."""
import re

import pytest

from mmkd.registry import MODELS
from mmkd.testing import scratch_config, tiny_detector

TINY = dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=4)


def test_classification_teacher_and_students_class_counts():
    cfg = scratch_config('configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_cifar100.py').model
    cfg.teacher.backbone = TINY
    for student in cfg.students:
        student.backbone = TINY
    cfg.students[1].num_classes = 10
    with pytest.raises(ValueError, match=re.escape(
            "teacher and students must predict the same classes, got num_classes "
            "{'teacher': 100, 'student0': 100, 'student1': 10} (model.teacher / "
            'model.students[k])')):
        MODELS.build(cfg)


def test_detection_teacher_and_students_class_counts():
    cfg = scratch_config('configs/kvasir_kdml_v3.py').model
    cfg.teacher = tiny_detector('gfl', 8, num_classes=1)
    cfg.students = [tiny_detector('gfl', 8, num_classes=2), tiny_detector('gfl', 8)]
    with pytest.raises(ValueError, match=re.escape(
            'model.students[0].bbox_head.cls_out_channels = 2 differs from '
            'model.teacher.bbox_head.cls_out_channels = 1')):
        MODELS.build(cfg)
