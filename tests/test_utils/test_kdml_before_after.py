"""tools/kdml_before_after.py: each stage undoes exactly the later changes, and the report's
Welch column compares each stage's ensemble with `before`."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.experiments.seeded_runs import REPO_ROOT, welch_p
from mmkd.utils import register_all_modules


@pytest.fixture(scope='module')
def tool():
    register_all_modules(init_default_scope=False)
    spec = importlib.util.spec_from_file_location(
        'kdml_before_after', osp.join(REPO_ROOT, 'tools/kdml_before_after.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings(cfg):
    hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
    return (cfg.optim_wrapper.get('constructor'), hooks, cfg.model.get('box_region'))


def test_detection_stages_switch_one_change_at_a_time(tool):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/kvasir_kdml_v3.py'))
    stages = tool.stage_configs(cfg)
    assert list(stages) == ['before', 'per-model', 'ramp', 'region']
    assert settings(stages['before']) == ('DefaultOptimWrapperConstructor', [], 'all')
    assert settings(stages['per-model']) == ('PerModelOptimWrapperConstructor', [], 'all')
    assert settings(stages['ramp']) == ('PerModelOptimWrapperConstructor',
                                        ['DistillScheduleHook'], 'all')
    assert settings(stages['region']) == ('PerModelOptimWrapperConstructor',
                                          ['DistillScheduleHook'], None)  # the default
    for stage in stages.values():  # nothing else changes
        assert stage.train_cfg == cfg.train_cfg and stage.model.students == cfg.model.students


def test_classification_has_no_box_stage(tool):
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs/fashion_mnist/kdml_r18w16-to-r18w8x2_1xb64-4e_fashion-mnist.py'))
    stages = tool.stage_configs(cfg)
    assert list(stages) == ['before', 'per-model', 'ramp']
    assert 'box_region' not in stages['before'].model


def test_report_rows_and_welch_against_before(tool):
    results = []
    values = {'before': [60.0, 10.0, 62.0], 'per-model': [70.0, 72.0, 71.0],
              'ramp': [73.0, 74.0, 72.0], 'region': [75.0, 74.0, 76.0]}
    for stage, vals in values.items():
        for seed, v in enumerate(vals):
            results.append(dict(group=stage, seed=seed, metrics={
                f'{m}/mIoU': v for m in ('teacher', 'student0', 'student1', 'ensemble')}))
    text = tool.report(results, list(values), 2, ['mIoU'])
    assert '| ensemble | 44.00 ± 29.46 | 71.00 ± 1.00 | 73.00 ± 1.00 | 75.00 ± 1.00 |' in text
    p = welch_p(values['region'], values['before'])
    assert f'| + boxes at positives | 75.00 ± 1.00 | {p:.3f} |' in text


def test_one_stage_alone_gives_its_spread_without_a_welch_column(tool):
    """`--stages region`: today's default over seeds (the main job's spread), no `before`."""
    results = [dict(group='region', seed=seed, metrics={
        f'{m}/mIoU': v for m in ('teacher', 'student0', 'student1', 'ensemble')})
        for seed, v in enumerate([70.0, 74.0, 72.0])]
    text = tool.report(results, ['region'], 2, ['mIoU'])
    assert '| ensemble | 72.00 ± 2.00 |' in text and 'over 3 seeds [0, 1, 2]' in text
    assert "Welch" not in text
