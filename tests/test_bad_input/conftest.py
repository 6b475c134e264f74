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
