"""Short real runs of the Kvasir-SEG main-job config on generated data in the real layout."""
import os

import cv2
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.testing import scratch_config, tiny_detector, write_kvasir_seg
from mmkd.utils import export_students, set_data_root

CONFIG = 'configs/kvasir_kdml_v3.py'
MODELS = ('teacher', 'student0', 'student1', 'ensemble')
KEYS = ('mIoU', 'acc50', 'AP', 'AP50')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('kvasir')
    write_kvasir_seg(str(root), num_images=10, seed=1)
    return str(root)


def small(cfg, data_root, work_dir):
    set_data_root(cfg, data_root)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        for step in loader.dataset.pipeline:
            if step.type == 'Resize':
                step.scale = (96, 96)
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    return cfg


def test_kdml_run_reports_every_key_exports_and_draws(data_root, tmp_path):
    cfg = scratch_config(CONFIG)
    # The V3 wiring (online KD+ML, GFL heads, NMS ensemble) with tiny detectors for speed.
    cfg.model.teacher = tiny_detector('gfl', 16)
    # Low-score boxes kept, so that one epoch's students have boxes for mmdet's CocoMetric.
    cfg.model.students = [dict(tiny_detector('gfl', 8), test_cfg=dict(score_thr=0.0))] * 2
    cfg = small(cfg, data_root, tmp_path / 'run')
    pictures = str(tmp_path / 'pictures')
    cfg.custom_hooks = [dict(type='DetComparisonHook', out_dir=pictures, max_images=2)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert set(metrics) == {f'{m}/{k}' for m in MODELS for k in KEYS}
    assert all(0 <= v <= 100 for v in metrics.values())

    files = sorted(os.listdir(pictures))
    assert len(files) == 2
    image = cv2.imread(os.path.join(pictures, files[0]))
    assert image is not None and image.shape[2] == 3 and image.size > 0

    exported = export_students(cfg, str(tmp_path / 'run' / 'epoch_1.pth'),
                               str(tmp_path / 'export'))
    cfg_path, ckpt_path = exported[0]
    alone = scratch_config(cfg_path)
    assert alone.model.type == 'GFL' and alone.default_scope == 'mmdet'  # plain mmdet
    alone.custom_hooks = []
    alone.work_dir, alone.load_from = str(tmp_path / 'alone'), ckpt_path
    # mmdet's COCO AP on the exported annotations, and mmkd's IoU metric on the same plain
    # config: both give the distiller's student0 numbers.
    alone.test_evaluator = [alone.test_evaluator,
                            dict(type='mmkd.DetIoUMetric', model_name='student0')]
    with DefaultScope.overwrite_default_scope('mmdet'):
        alone_metrics = Runner.from_cfg(alone).test()
    assert {f'student0/{k}' for k in KEYS} | {'coco/bbox_mAP', 'coco/bbox_mAP_50'} <= set(
        alone_metrics)
    for key in KEYS:
        assert alone_metrics[f'student0/{key}'] == pytest.approx(
            metrics[f'student0/{key}'], abs=1e-9), key
    # CocoMetric rounds to 3 decimals of a fraction
    assert 100 * alone_metrics['coco/bbox_mAP'] == pytest.approx(metrics['student0/AP'],
                                                                 abs=0.05)
    assert 100 * alone_metrics['coco/bbox_mAP_50'] == pytest.approx(metrics['student0/AP50'],
                                                                    abs=0.05)


def test_single_box_run_reports_every_key(data_root, tmp_path):
    cfg = scratch_config('configs/kvasir/kvasir_box-kdml_v3.py')
    tiny = dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=8)
    cfg.model.teacher.backbone = tiny
    for student in cfg.model.students:
        student.backbone = tiny
    runner = Runner.from_cfg(small(cfg, data_root, tmp_path / 'box'))
    runner.train()
    metrics = runner.test()
    assert set(metrics) == {f'{m}/{k}' for m in MODELS for k in KEYS}


def test_resume_matches_straight_run(data_root, tmp_path):
    """Detection KD+ML: two epochs straight vs one + --resume give bit-identical weights.
    One dataloader worker: mmengine seeds workers the same way every epoch, so the random
    flips do not depend on whether the run was resumed (with 0 workers they would use the
    main process's generator, which a resume restarts)."""
    def run(name, epochs, resume_from=None):
        cfg = scratch_config(CONFIG)
        cfg.model.teacher = tiny_detector('gfl', 16)
        cfg.model.students = [tiny_detector('gfl', 8), tiny_detector('gfl', 8)]
        cfg = small(cfg, data_root, tmp_path / name)
        cfg.train_dataloader.update(num_workers=1)
        cfg.train_cfg.max_epochs = epochs
        cfg.train_cfg.val_interval = 10
        cfg.randomness = dict(seed=0, deterministic=True)
        if resume_from:
            cfg.resume, cfg.load_from = True, resume_from
        Runner.from_cfg(cfg).train()
        return tmp_path / name / f'epoch_{epochs}.pth'

    straight = safe_torch_load(run('straight', 2))
    resumed = safe_torch_load(run('resumed', 2, str(run('first', 1))))
    assert not (tmp_path / 'resumed' / 'epoch_1.pth').exists()
    for key, value in straight['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key
    # one optimiser per model (PerModelOptimWrapperConstructor), each restored
    assert set(straight['optimizer']) == {'teacher', 'student0', 'student1'}
    for name, state in straight['optimizer'].items():
        for a, b in zip(state['state'].values(), resumed['optimizer'][name]['state'].values()):
            assert torch.equal(a['momentum_buffer'], b['momentum_buffer']), name
