"""Small data sets in the real on-disk formats, written once per module and copied by the
tests that damage them."""
import shutil

import pytest

from mmkd.testing import write_cifar100, write_kvasir_seg, write_msi_tiles


def _copy(src, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return str(dst)


@pytest.fixture(scope='module')
def _kvasir(tmp_path_factory):
    return write_kvasir_seg(str(tmp_path_factory.mktemp('kvasir')), num_images=4, seed=3,
                            img_size_range=((60, 80), (70, 90)))


@pytest.fixture(scope='module')
def _msi(tmp_path_factory):
    return write_msi_tiles(str(tmp_path_factory.mktemp('msi')), 'kaggle', num_patients=6,
                           tiles_per_patient=4, img_size=32)


@pytest.fixture(scope='module')
def _cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp('cifar')
    write_cifar100(str(root), num_train_per_class=1, num_test_per_class=1)
    return str(root)


@pytest.fixture
def kvasir_root(_kvasir, tmp_path):
    """A writable Kvasir-SEG folder: images/, masks/, kavsir_bboxes.json."""
    return _copy(_kvasir, tmp_path, 'kvasir')


@pytest.fixture
def msi_root(_msi, tmp_path):
    """A writable Kaggle-layout MSI folder: MSIMUT_JPEG/, MSS_JPEG/."""
    return _copy(_msi, tmp_path, 'msi')


@pytest.fixture
def cifar_root(_cifar, tmp_path):
    """A writable folder holding cifar-100-python/{train,test,meta}."""
    return _copy(_cifar, tmp_path, 'cifar')


# ---------------------------------------------------------------- runs through the tools
KDML_MSI = 'configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py'


def _tiny_cfg(data_root, work_dir=None, max_epochs=2, teacher=None, students=(4, 4)):
    """The online KD+ML MSI config shrunk to CIFAR ResNets (teacher: ``teacher`` backbone
    options, default 2 stages of 8 channels; one student per entry of ``students``, an int
    width or a dict of backbone options) on 32 px tiles, batch 8, no validation."""
    from mmengine.config import Config
    from mmkd.utils import set_data_root
    cfg = Config.fromfile(KDML_MSI)
    set_data_root(cfg, data_root)

    def backbone(options):
        options = dict(base_channels=options) if isinstance(options, int) else options
        return dict(type='CIFARResNet', depth=18, **{'num_stages': 2, **options})

    cfg.model.teacher.backbone = backbone(teacher or 8)
    cfg.model.students = [dict(cfg.model.students[0], backbone=backbone(s)) for s in students]
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=8, num_workers=0, persistent_workers=False)
        cfg[name].dataset.img_size = 32
    cfg.train_cfg.update(max_epochs=max_epochs, val_interval=100)
    cfg.randomness = dict(seed=0)
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    return cfg


def _write_cfg(cfg, path):
    cfg.dump(str(path))
    return str(path)


@pytest.fixture(scope='session')
def tiny_cfg():
    """``tiny_cfg(data_root, work_dir=None, max_epochs=2, teacher=None, students=(4, 4))``:
    the online KD+ML MSI config, shrunk (see ``_tiny_cfg``)."""
    return _tiny_cfg


@pytest.fixture(scope='session')
def write_cfg():
    """``write_cfg(cfg, path)`` dumps ``cfg`` as a config file (what the tools take) and
    returns its path."""
    return _write_cfg


@pytest.fixture(scope='session')
def tool():
    """``tool('train', *args)`` runs tools/train.py in this process, as the command line
    ``python tools/train.py *args`` would (an uncaught exception is a non-zero exit).

    Like a new process, each run gets its own loggers: mmengine names a run's logger
    ``<config name>_<timestamp>`` and hands back an existing one of that name, so two
    in-process runs of one config within the same second, in different work dirs, would
    otherwise both write into the first one's log file."""
    import runpy
    import sys
    from unittest import mock

    from mmengine.logging import MMLogger

    def run(name, *args):
        before = set(MMLogger._instance_dict)
        try:
            with mock.patch.object(sys, 'argv', [f'tools/{name}.py', *map(str, args)]):
                runpy.run_path(f'tools/{name}.py', run_name='__main__')
        finally:
            for logger_name in set(MMLogger._instance_dict) - before:
                for handler in MMLogger._instance_dict.pop(logger_name).handlers:
                    handler.close()

    return run


@pytest.fixture
def mmkd_log():
    """Messages logged to the current MMLogger while the test runs (print_log(logger=
    'current') goes there, and MMLogger does not propagate to pytest's caplog)."""
    import logging

    from mmengine.logging import MMLogger

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    handler, logger = Collect(), MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)
