"""Short real runs of paper-B classification configs on generated MSI-tile data."""
import pytest
import torch
from mmengine.runner import Runner

from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.testing import scratch_config, write_msi_tiles
from mmkd.utils import export_students, set_data_root

CONFIG = 'configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py'
KEYS = ('top1_acc', 'top1_err', 'nll', 'ece', 'aurc', 'eaurc')


def tiny(arch_width):
    return dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=arch_width)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('msi')
    write_msi_tiles(str(root), layout='kaggle', num_patients=6, tiles_per_patient=4,
                    img_size=32)
    return str(root)


def tiny_cfg(data_root, work_dir, config=CONFIG):
    cfg = scratch_config(config)
    set_data_root(cfg, data_root)
    # Real configs use ResNet-152/50/34 at 224 px; the run keeps their wiring, tiny nets.
    cfg.model.teacher.backbone = tiny(16)
    for student in cfg.model.students:
        student.backbone = tiny(8)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=8, num_workers=0, persistent_workers=False)
        cfg[name].dataset.img_size = 32
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    return cfg


class TestKDMLClsRun:

    def test_run_reports_every_model_and_export_round_trips(self, data_root, tmp_path):
        cfg = tiny_cfg(data_root, tmp_path / 'run')
        runner = Runner.from_cfg(cfg)
        runner.train()
        metrics = runner.test()
        models = ('teacher', 'student0', 'student1', 'ensemble')
        assert set(metrics) == {f'{m}/{k}' for m in models for k in KEYS}

        exported = export_students(cfg, str(tmp_path / 'run' / 'epoch_1.pth'),
                                   str(tmp_path / 'export'))
        assert len(exported) == 2
        for k, (cfg_path, ckpt_path) in enumerate(exported):
            alone = scratch_config(cfg_path)
            assert alone.model.type == 'ImageClassifier'
            alone.work_dir, alone.load_from = str(tmp_path / f'alone{k}'), ckpt_path
            alone_metrics = Runner.from_cfg(alone).test()
            assert set(alone_metrics) == {f'student{k}/{m}' for m in KEYS}
            for key, value in alone_metrics.items():
                assert value == metrics[key], key


def test_resume_matches_straight_run(data_root, tmp_path):
    """Two epochs straight vs one epoch + --resume: bit-identical weights and optimiser."""
    def run(name, epochs, resume_from=None):
        cfg = tiny_cfg(data_root, tmp_path / name)
        cfg.train_cfg.max_epochs = epochs
        cfg.randomness = dict(seed=0, deterministic=True)
        if resume_from:
            cfg.resume, cfg.load_from = True, resume_from
        Runner.from_cfg(cfg).train()
        return tmp_path / name / f'epoch_{epochs}.pth'

    straight = safe_torch_load(run('straight', 2))
    first = run('first', 1)
    resumed_path = run('resumed', 2, str(first))
    assert not (tmp_path / 'resumed' / 'epoch_1.pth').exists()  # really resumed
    resumed = safe_torch_load(resumed_path)
    for key, value in straight['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key
    # one optimiser per model (PerModelOptimWrapperConstructor), each restored
    assert set(straight['optimizer']) == {'teacher', 'student0', 'student1'}
    for name, state in straight['optimizer'].items():
        for a, b in zip(state['state'].values(), resumed['optimizer'][name]['state'].values()):
            assert torch.equal(a['momentum_buffer'], b['momentum_buffer']), name
