"""Each distiller's real config, shrunk to tiny models and generated data in the real on-disk
format, for short runs in tests and on a GPU (``tools/gpu_check.sh``)."""
from mmengine.config import Config

from mmkd.utils.launch import set_data_root
from .cifar_format import write_cifar100
from .kvasir_format import write_kvasir_seg
from .msi_format import write_msi_tiles
from .scratch_config import scratch_config
from .tiny_detectors import tiny_detector

KINDS = ('cls-kdml', 'det-kdml', 'box-kdml', 'multi-exit')


def _loaders(cfg: Config, batch_size: int, scale=None, **dataset) -> None:
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=batch_size, num_workers=0, persistent_workers=False)
        cfg[name].dataset.update(dataset)
        for step in cfg[name].dataset.get('pipeline') or []:
            if scale is not None and step.type == 'Resize':
                step.scale = scale


def tiny_run_cfg(kind: str, root: str, batch_size: int = 4, scale=(64, 64),
                 validate: bool = False) -> Config:
    """The config of ``kind`` (one of :data:`KINDS`: ``KDMLDistiller`` on MSI tiles,
    ``DetKDMLDistiller`` and ``SingleBoxKDMLDistiller`` on Kvasir-SEG, ``MultiExitDistiller``
    with PS-KD + BYOT + DMFL on CIFAR-100) with tiny models, data written under ``root``
    (8 training images of 32 px, 5 resized to ``scale`` for the detectors, 100 for CIFAR) and
    ``batch_size`` images per batch (a last, smaller batch dropped), 1 epoch, seed 0, and a
    validation after it only if ``validate`` (the detectors' heads need ``scale`` ≥ 160 for
    a one-image batch: their GroupNorm sees one value per group at 64 px)."""
    if kind == 'cls-kdml':
        data = write_msi_tiles(f'{root}/msi', 'kaggle', num_patients=4, tiles_per_patient=2,
                               img_size=32)
        cfg = Config.fromfile('configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py')
        backbone = dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=4)
        cfg.model.teacher.backbone = dict(backbone, base_channels=8)
        cfg.model.students = [dict(cfg.model.students[0], backbone=backbone)] * 2
        _loaders(cfg, batch_size, img_size=32)
    elif kind in ('det-kdml', 'box-kdml'):
        data = write_kvasir_seg(f'{root}/kvasir', num_images=6, seed=3,
                                img_size_range=((60, 80), (70, 90)))
        if kind == 'det-kdml':
            cfg = scratch_config('configs/kvasir_kdml_v3.py')
            cfg.model.teacher = tiny_detector('gfl', 16)
            cfg.model.students = [tiny_detector('gfl', 8)] * 2
        else:
            cfg = scratch_config('configs/kvasir/kvasir_box-kdml_v1.py')
            for model in (cfg.model.teacher, *cfg.model.students):
                model.backbone.arch = 'resnet18'
        _loaders(cfg, batch_size, scale=scale)
    elif kind == 'multi-exit':
        data = f'{root}/cifar'
        write_cifar100(data, num_train_per_class=1, num_test_per_class=1)
        cfg = Config.fromfile('configs/self_distill/pskd-byot-dmfl_r18_1xb128-300e_cifar100.py')
        cfg.model.backbone.base_channels = 4
        _loaders(cfg, batch_size)
    else:
        raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
    set_data_root(cfg, data)
    # no batch of one image (BN / GN statistics)
    loader = cfg.train_dataloader
    (loader.batch_sampler if loader.get('batch_sampler') else loader).drop_last = True
    cfg.train_cfg.update(max_epochs=1, val_interval=100)
    if not validate:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.randomness = dict(seed=0)
    cfg.work_dir = f'{root}/work'
    return cfg
