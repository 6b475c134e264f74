"""Temperatures, PS-KD's alpha_t, loss weights and class counts outside their range stop the
build (or the run, before its first iteration) with the config key and the allowed range."""
import re

import pytest
from mmengine.config import ConfigDict

from mmkd.datasets import CIFAR100Dataset, KvasirSegDataset
from mmkd.engine.hooks.num_classes_check_hook import check_num_classes
from mmkd.registry import MODELS
from mmkd.testing import tiny_detector

TINY = dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=4)
CLS = dict(type='ImageClassifier', num_classes=2, backbone=TINY)
BOX = dict(type='SingleBoxRegressor', backbone=TINY)
MODEL_CFGS = dict(
    kdml=dict(type='KDMLDistiller', teacher=CLS, students=[CLS, CLS]),
    det=dict(type='DetKDMLDistiller', teacher=tiny_detector('gfl', 8),
             students=[tiny_detector('gfl', 8), tiny_detector('gfl', 8)]),
    box=dict(type='SingleBoxKDMLDistiller', teacher=BOX, students=[BOX, BOX]),
    exits=dict(type='MultiExitDistiller', backbone=TINY, num_classes=10, pskd=dict(),
               byot=dict(), dmfl=dict()),
)
TEMPERATURE = ('must be > 0: a temperature divides the logits (0 gives NaN, a negative one '
               'reverses the order of the classes)')
WEIGHT = 'must be >= 0: a loss weight scales its term (0 turns it off, a negative one ' \
         'trains against it)'
CASES = [
    ('kdml', 'temperature', 0, TEMPERATURE),
    ('kdml', 'temperature', -2.0, TEMPERATURE),
    ('det', 'temperature', -1, TEMPERATURE),
    ('det', 'ld_temperature', -10, TEMPERATURE),
    ('exits', 'byot.temperature', 0.0, TEMPERATURE),
    ('exits', 'dmfl.temperature', -1.0, TEMPERATURE),
    ('kdml', 'kd_weight', -0.45, WEIGHT),
    ('kdml', 'cls_weight', -1, WEIGHT),
    ('det', 'ml_weight', -0.1, WEIGHT),
    ('det', 'det_weight', -1.0, WEIGHT),
    ('det', 'box_l1_weight', -5, WEIGHT),
    ('det', 'box_giou_weight', -2, WEIGHT),
    ('det', 'ld_weight', -0.25, WEIGHT),
    ('box', 'gt_weight', -0.1, WEIGHT),
    ('box', 'kd_weight', -1, WEIGHT),
    ('box', 'students.1.box_weight', -1, WEIGHT),
    ('box', 'teacher.conf_weight', -1, WEIGHT),
    ('exits', 'byot.hint_weight', -1e-6, WEIGHT),
    ('exits', 'byot.final_ce_weight', -1.9, WEIGHT),
    ('exits', 'dmfl.weight', -1, WEIGHT),
    ('exits', 'pskd.alpha_t', 1.6, 'must be in [0, 1]: the PS-KD target is (1 - alpha) * '
     'label + alpha * previous prediction (above 1 the label gets a negative weight; 0 is '
     'plain one-hot training)'),
    ('exits', 'pskd.alpha_t', -0.2, 'must be in [0, 1]: the PS-KD target is (1 - alpha) * '
     'label + alpha * previous prediction (above 1 the label gets a negative weight; 0 is '
     'plain one-hot training)'),
    ('exits', 'byot.alpha', 1.5, 'must be in [0, 1]: BYOT weighs the label by 1 - alpha and '
     'the deepest exit by alpha'),
    ('kdml', 'temperature', 'high', TEMPERATURE),
]


def set_key(cfg, dotted, value):
    *parents, last = dotted.split('.')
    for part in parents:
        cfg = cfg[int(part)] if part.isdigit() else cfg[part]
    cfg[last] = value


@pytest.mark.parametrize('model, key, value, rule', CASES,
                         ids=[f'{m}-{k}={v}' for m, k, v, _ in CASES])
def test_setting_outside_its_range(model, key, value, rule):
    cfg = ConfigDict(MODEL_CFGS[model])
    set_key(cfg, key, value)
    key = re.sub(r'\.(\d+)', r'[\1]', f'model.{key}')
    with pytest.raises(ValueError, match=f'^{re.escape(f"{key} = {value!r} {rule}")}$'):
        MODELS.build(cfg)


@pytest.mark.parametrize('model', sorted(MODEL_CFGS))
def test_the_defaults_are_valid(model):
    assert MODELS.build(ConfigDict(MODEL_CFGS[model])) is not None


# ---------------------------------------------------------------- class counts
def test_heads_of_five_classes_on_two_class_data_stop_before_the_first_iteration(
        msi_root, tmp_path, tool, tiny_cfg, write_cfg):
    cfg = tiny_cfg(msi_root)
    for model in [cfg.model.teacher, *cfg.model.students]:
        model.num_classes = 5
    config = write_cfg(cfg, tmp_path / 'five.py')
    with pytest.raises(ValueError) as info:
        tool('train', config, '--work-dir', tmp_path / 'work')
    assert str(info.value) == (
        'the models predict another number of classes than train_dataloader.dataset '
        "(MSITileDataset) has: 2 classes ('MSS', 'MSI'), but model.teacher.num_classes = 5, "
        'model.students[0].num_classes = 5, model.students[1].num_classes = 5. Set them to 2, '
        'or use the dataset the config was written for.')
    assert not list((tmp_path / 'work').glob('*.pth'))


def test_multi_exit_with_ten_classes_on_cifar100(cifar_root):
    model = MODELS.build(ConfigDict(MODEL_CFGS['exits'], pskd=None))
    dataset = CIFAR100Dataset(cifar_root, split='train')
    with pytest.raises(ValueError, match=re.escape(
            'the models predict another number of classes than train_dataloader.dataset '
            "(CIFAR100Dataset) has: 100 classes ('class_000', 'class_001', 'class_002', ...), "
            'but model.num_classes = 10. Set them to 100')):
        check_num_classes(model, dataset, 'train_dataloader')


def test_detectors_of_two_classes_on_one_class_data(kvasir_root):
    model = MODELS.build(ConfigDict(
        MODEL_CFGS['det'], teacher=tiny_detector('gfl', 8, num_classes=2),
        students=[tiny_detector('gfl', 8, num_classes=2)], ml_weight=0))
    dataset = KvasirSegDataset(data_root=kvasir_root, split='all', pipeline=[])
    with pytest.raises(ValueError, match=re.escape(
            "test_dataloader.dataset (KvasirSegDataset) has: 1 classes ('polyp',), but "
            'model.teacher.bbox_head.num_classes = 2, '
            'model.students[0].bbox_head.num_classes = 2. Set them to 1')):
        check_num_classes(model, dataset, 'test_dataloader')


def test_matching_class_counts_pass(cifar_root):
    model = MODELS.build(ConfigDict(MODEL_CFGS['exits'], num_classes=100))
    check_num_classes(model, CIFAR100Dataset(cifar_root, split='train'), 'train_dataloader')
