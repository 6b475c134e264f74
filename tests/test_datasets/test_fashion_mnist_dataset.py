import copy
import gzip
import inspect
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.runner import Runner

from mmkd.datasets import FashionMNISTDataset, load_fashion_mnist, read_idx
from mmkd.datasets.fashion_mnist_dataset import (DEFAULT_DATA_ROOT, FASHION_MNIST_CLASSES,
                                                 stratified_subset)
from mmkd.registry import DATASETS, MODELS
from mmkd.testing import idx_bytes, write_fashion_mnist, write_idx
from mmkd.utils import set_data_root

NUM_TRAIN, NUM_TEST = 40, 20
TRAIN_IMAGES = 'train-images-idx3-ubyte'
TRAIN_LABELS = 'train-labels-idx1-ubyte'
BASE_CONFIG = 'configs/_base_/datasets/fashion_mnist.py'
SELF_DISTILL_CONFIG = 'configs/self_distill/pskd-byot-dmfl_r18_1xb128-300e_cifar100.py'


@pytest.fixture(scope='module')
def gz_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('fashion_gz'))
    write_fashion_mnist(root, NUM_TRAIN, NUM_TEST, seed=0, compress=True)
    return root


@pytest.fixture(scope='module')
def plain_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('fashion_plain'))
    write_fashion_mnist(root, NUM_TRAIN, NUM_TEST, seed=0, compress=False)
    return root


@pytest.fixture
def root(gz_root, tmp_path):
    """A copy of the gzipped set that a test may break."""
    return shutil.copytree(gz_root, str(tmp_path / 'fashion'))


def _raw(root, stem):
    return read_idx(osp.join(root, stem + '.gz'))


class TestIDX:

    def test_bytes_are_the_real_format(self):
        # magic 0x00000803 (uint8, 3 dims), sizes 1, 2, 2 big-endian, then row-major data
        data = idx_bytes(np.array([[[1, 2], [3, 4]]], np.uint8))
        assert data == bytes.fromhex('00000803' '00000001' '00000002' '00000002' '01020304')
        # int16 258 = 0x0102 big-endian; type byte 0x0B, 1 dim of size 1
        assert idx_bytes(np.array([258], np.int16)) == bytes.fromhex('00000b01 00000001 0102')

    @pytest.mark.parametrize('dtype', [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                       np.float64])
    @pytest.mark.parametrize('suffix', ['', '.gz'])
    def test_round_trip(self, tmp_path, dtype, suffix):
        array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        path = write_idx(str(tmp_path / f'a-idx3{suffix}'), array)
        with open(path, 'rb') as f:
            assert (f.read(2) == b'\x1f\x8b') == (suffix == '.gz')
        out = read_idx(path)
        assert out.dtype == np.dtype(dtype) and out.dtype.isnative
        np.testing.assert_array_equal(out, array)

    def test_gzip_recognised_by_content_not_name(self, tmp_path):
        path = str(tmp_path / 'labels-no-suffix')
        with open(path, 'wb') as f:
            f.write(gzip.compress(idx_bytes(np.array([7, 1], np.uint8))))
        assert read_idx(path).tolist() == [7, 1]

    def test_matches_magic(self, tmp_path):
        path = write_idx(str(tmp_path / 'l'), np.array([1], np.uint8))
        assert read_idx(path, magic=0x00000801).tolist() == [1]
        with pytest.raises(ValueError, match=re.escape(path) + ' has magic number 0x00000801, '
                           'expected 0x00000803'):
            read_idx(path, magic=0x00000803)


class TestFashionMNISTDataset:

    def test_items(self, gz_root):
        ds = FashionMNISTDataset(gz_root)
        images, labels = _raw(gz_root, TRAIN_IMAGES), _raw(gz_root, TRAIN_LABELS)
        assert len(ds) == NUM_TRAIN and ds.test_mode is False
        assert ds.metainfo == dict(classes=FASHION_MNIST_CLASSES) and len(ds.classes) == 10
        assert ds.classes[0] == 'T-shirt/top' and ds.classes[9] == 'Ankle boot'
        for i in (0, 13, NUM_TRAIN - 1):
            item = ds[i]
            assert set(item) == {'inputs', 'data_samples'}
            assert item['data_samples'] == dict(gt_label=int(labels[i]), sample_idx=i)
            img = item['inputs']
            assert img.dtype == torch.uint8 and img.shape == (3, 32, 32)
            # grey repeated to 3 channels, 28x28 centred in a zero border of 2
            for c in range(3):
                assert torch.equal(img[c, 2:30, 2:30], torch.from_numpy(images[i]))
            assert img[:, :2].sum() == img[:, 30:].sum() == 0
            assert img[:, :, :2].sum() == img[:, :, 30:].sum() == 0
        assert ds.source_indices.tolist() == list(range(NUM_TRAIN))

    def test_plain_files_equal_gzipped(self, gz_root, plain_root):
        for test_mode in (False, True):
            gz = FashionMNISTDataset(gz_root, test_mode=test_mode)
            plain = FashionMNISTDataset(plain_root, test_mode=test_mode)
            assert np.array_equal(gz.images, plain.images)
            assert np.array_equal(gz.labels, plain.labels)

    def test_plain_file_is_used_before_gz(self, root):
        labels = _raw(root, TRAIN_LABELS)
        write_idx(osp.join(root, TRAIN_LABELS), (labels + 1) % 10)
        assert FashionMNISTDataset(root).labels.tolist() == ((labels + 1) % 10).tolist()

    def test_test_mode_reads_t10k(self, gz_root):
        ds = FashionMNISTDataset(gz_root, test_mode=True)
        assert len(ds) == NUM_TEST
        assert ds.labels.tolist() == _raw(gz_root, 't10k-labels-idx1-ubyte').tolist()
        t10k = _raw(gz_root, 't10k-images-idx3-ubyte')
        assert torch.equal(ds[5]['inputs'][1, 2:30, 2:30], torch.from_numpy(t10k[5]))

    def test_pad_zero_keeps_28(self, gz_root):
        ds = FashionMNISTDataset(gz_root, pad=0)
        assert ds[0]['inputs'].shape == (3, 28, 28)
        assert torch.equal(ds[0]['inputs'][2], torch.from_numpy(_raw(gz_root, TRAIN_IMAGES)[0]))

    @pytest.mark.parametrize('pad', [-1, 1.5, True])
    def test_bad_pad(self, gz_root, pad):
        with pytest.raises(ValueError, match='dataset.pad must be a non-negative int'):
            FashionMNISTDataset(gz_root, pad=pad)

    def test_collate_and_preprocessor(self, gz_root, epoch_info):
        ds = FashionMNISTDataset(gz_root)
        batch = default_collate([ds[i] for i in range(4)])
        assert batch['inputs'].shape == (4, 3, 32, 32) and batch['inputs'].dtype == torch.uint8
        assert batch['data_samples']['sample_idx'].tolist() == [0, 1, 2, 3]
        assert batch['data_samples']['gt_label'].tolist() == ds.labels[:4].tolist()
        pre = MODELS.build(dict(type='ClsDataPreprocessor', mean=[55.84] * 3,
                                std=[84.61] * 3, seed=0))
        epoch_info(0, 1)
        out = pre(copy.deepcopy(batch), training=False)
        assert out['inputs'].shape == (4, 3, 32, 32) and out['inputs'].dtype == torch.float32
        torch.testing.assert_close(out['inputs'], (batch['inputs'].float() - 55.84) / 84.61)
        aug = pre(copy.deepcopy(batch), training=True)['inputs']
        assert aug.shape == (4, 3, 32, 32)
        assert not torch.equal(aug, out['inputs'])  # cropped / flipped
        # the same crop and flip for the 3 channels: they stay equal
        assert torch.equal(aug[:, 0], aug[:, 1]) and torch.equal(aug[:, 0], aug[:, 2])


class TestSubset:

    def test_hand_worked_cases(self):
        # one per class first: class 1's only sample is in any 2-subset
        for seed in range(5):
            chosen = stratified_subset(np.array([0, 0, 0, 1]), 2, seed)
            assert 3 in chosen.tolist() and len(chosen) == 2
        # unbalanced: both class-1 samples, then class 0 fills the rest
        chosen = stratified_subset(np.array([0] * 8 + [1] * 2), 6, seed=3)
        assert chosen.tolist()[-2:] == [8, 9] and len(chosen) == 6

    def test_seeded_balanced_dense(self, gz_root):
        a = FashionMNISTDataset(gz_root, subset_size=15, subset_seed=1)
        b = FashionMNISTDataset(gz_root, subset_size=15, subset_seed=1)
        c = FashionMNISTDataset(gz_root, subset_size=15, subset_seed=2)
        assert len(a) == 15
        assert a.source_indices.tolist() == b.source_indices.tolist()
        assert a.source_indices.tolist() != c.source_indices.tolist()
        assert a.source_indices.tolist() == sorted(set(a.source_indices.tolist()))
        # 15 of 10 balanced classes: every class once, 5 classes twice
        assert sorted(np.bincount(a.labels, minlength=10).tolist()) == [1] * 5 + [2] * 5
        images, labels = _raw(gz_root, TRAIN_IMAGES), _raw(gz_root, TRAIN_LABELS)
        for i in range(15):
            src = a.source_indices[i]
            item = a[i]
            assert item['data_samples'] == dict(gt_label=int(labels[src]), sample_idx=i)
            assert torch.equal(item['inputs'][0, 2:30, 2:30], torch.from_numpy(images[src]))
        # a smaller subset with the same seed is part of the larger one
        small = FashionMNISTDataset(gz_root, subset_size=7, subset_seed=1)
        assert set(small.source_indices.tolist()) < set(a.source_indices.tolist())
        full = FashionMNISTDataset(gz_root, subset_size=NUM_TRAIN)
        assert full.source_indices.tolist() == list(range(NUM_TRAIN))

    @pytest.mark.parametrize('size', [0, NUM_TRAIN + 1, 2.0, True])
    def test_bad_size(self, gz_root, size):
        with pytest.raises(ValueError, match=re.escape(
                f'dataset.subset_size must be an int in [1, {NUM_TRAIN}] (the size of the '
                f'train split in {gz_root}), got {size!r}')):
            FashionMNISTDataset(gz_root, subset_size=size)


class TestBadFiles:

    def test_missing_file(self, tmp_path):
        folder = str(tmp_path / 'nowhere')
        with pytest.raises(FileNotFoundError) as e:
            FashionMNISTDataset(folder)
        msg = str(e.value)
        assert msg.startswith(f'Fashion-MNIST file {TRAIN_IMAGES} not found: looked for '
                              f'{osp.join(folder, TRAIN_IMAGES)} and '
                              f'{osp.join(folder, TRAIN_IMAGES)}.gz')
        assert 'apt-get update && apt-get install -y dataset-fashion-mnist' in msg
        assert '--data-root' in msg

    def test_missing_labels_only(self, root):
        os.remove(osp.join(root, 't10k-labels-idx1-ubyte.gz'))
        FashionMNISTDataset(root)  # train is complete
        with pytest.raises(FileNotFoundError, match='file t10k-labels-idx1-ubyte not found'):
            FashionMNISTDataset(root, test_mode=True)

    def test_swapped_files_are_a_wrong_magic(self, root):
        images = osp.join(root, TRAIN_IMAGES + '.gz')
        shutil.copy(osp.join(root, TRAIN_LABELS + '.gz'), images)
        with pytest.raises(ValueError, match=re.escape(images) + ' has magic number '
                           '0x00000801, expected 0x00000803: it is not the IDX file'):
            FashionMNISTDataset(root)

    def test_not_idx_at_all(self, root):
        labels = osp.join(root, TRAIN_LABELS + '.gz')
        with gzip.open(labels, 'wb') as f:
            f.write(b'<html>404</html>')
        with pytest.raises(ValueError, match=re.escape(labels) + ' has magic number '
                           '0x3c68746d, expected 0x00000801'):
            FashionMNISTDataset(root)

    def test_invalid_type_byte_without_expected_magic(self, tmp_path):
        path = str(tmp_path / 'x')
        with open(path, 'wb') as f:
            f.write(bytes.fromhex('00000a01 00000001 00'))
        with pytest.raises(ValueError, match=re.escape(path) + ' has magic number 0x00000a01, '
                           'expected 0x0000TTNN'):
            read_idx(path)

    @pytest.mark.parametrize('compress', [False, True])
    def test_truncated_data(self, tmp_path, compress):
        data = idx_bytes(np.zeros((NUM_TRAIN, 28, 28), np.uint8))
        path = str(tmp_path / (TRAIN_IMAGES + ('.gz' if compress else '')))
        cut = data[:-100]  # a download cut short, recompressed by a mirror
        with open(path, 'wb') as f:
            f.write(gzip.compress(cut) if compress else cut)
        write_idx(str(tmp_path / TRAIN_LABELS), np.zeros(NUM_TRAIN, np.uint8))
        # header 16 bytes; data 40 * 28 * 28 = 31360 bytes, 100 missing
        with pytest.raises(ValueError, match=re.escape(
                f'{path} is truncated: its data of shape (40, 28, 28) (uint8) needs 31360 '
                'bytes but only 31260 are there')):
            FashionMNISTDataset(str(tmp_path))

    def test_truncated_header(self, tmp_path):
        path = str(tmp_path / 'h')
        with open(path, 'wb') as f:
            f.write(bytes.fromhex('00000803 0000'))
        with pytest.raises(ValueError, match=re.escape(
                f'{path} is truncated: its header of 3 dimension sizes needs 12 bytes but only '
                '2 are there')):
            read_idx(path)
        with open(path, 'wb') as f:
            f.write(b'\0\0')
        with pytest.raises(ValueError, match=re.escape(
                f'{path} is truncated: its IDX magic number needs 4 bytes but only 2')):
            read_idx(path)

    def test_cut_gzip_stream(self, root):
        path = osp.join(root, TRAIN_IMAGES + '.gz')
        with open(path, 'rb') as f:
            raw = f.read()
        with open(path, 'wb') as f:
            f.write(raw[:len(raw) // 2])  # the .gz itself cut short
        with pytest.raises(ValueError, match=re.escape(path) + ' is a corrupt or truncated '
                           'gzip file'):
            FashionMNISTDataset(root)

    def test_bytes_after_data(self, tmp_path):
        path = str(tmp_path / 'l')
        with open(path, 'wb') as f:
            f.write(idx_bytes(np.array([1, 2], np.uint8)) + b'\0')
        with pytest.raises(ValueError, match=re.escape(path) + ' has bytes after the 2 data '
                           'bytes that its header'):
            read_idx(path)

    def test_count_mismatch(self, root):
        labels = osp.join(root, TRAIN_LABELS + '.gz')
        write_idx(labels, _raw(root, TRAIN_LABELS)[:-1])
        images = osp.join(root, TRAIN_IMAGES + '.gz')
        with pytest.raises(ValueError, match=re.escape(
                f'{images} holds {NUM_TRAIN} images but {labels} holds {NUM_TRAIN - 1} '
                'labels: the two files are not one split')):
            load_fashion_mnist(root)

    def test_label_out_of_range(self, root):
        labels = osp.join(root, TRAIN_LABELS + '.gz')
        bad = _raw(root, TRAIN_LABELS).copy()
        bad[[3, 7]] = [10, 200]
        write_idx(labels, bad)
        with pytest.raises(ValueError, match=re.escape(
                f'{labels}: sample 3 has label 10 outside [0, 10) (2 such samples)')):
            FashionMNISTDataset(root)


class TestFromConfig:

    def test_base_config_and_data_root_override(self, gz_root):
        cfg = Config.fromfile(BASE_CONFIG)
        assert cfg.train_dataloader.dataset.data_root == DEFAULT_DATA_ROOT
        set_data_root(cfg, gz_root)
        train = DATASETS.build(cfg.train_dataloader.dataset)
        val = DATASETS.build(cfg.val_dataloader.dataset)
        assert type(train) is FashionMNISTDataset and (len(train), len(val)) == (NUM_TRAIN,
                                                                                  NUM_TEST)
        assert val.test_mode is True
        cfg.train_dataloader.update(num_workers=0, persistent_workers=False, batch_size=8)
        batch = next(iter(Runner.build_dataloader(cfg.train_dataloader, seed=0)))
        assert batch['inputs'].shape == (8, 3, 32, 32)
        assert set(batch['data_samples']) == {'gt_label', 'sample_idx'}

    def test_default_data_root_is_debian_path(self):
        default = inspect.signature(FashionMNISTDataset).parameters['data_root'].default
        assert default == DEFAULT_DATA_ROOT == '/usr/share/datasets/fashion-mnist/'

    def test_self_distill_run_on_a_subset(self, gz_root, tmp_path):
        """The paper-A r18 config (PS-KD + BYOT + DMFL) trains one epoch on a 30-image subset
        and scores the test split: the PS-KD memory is sized by the subset and every dense
        sample_idx filled its row."""
        cfg = Config.fromfile(SELF_DISTILL_CONFIG)
        cfg.model.num_classes = 10
        cfg.model.backbone.base_channels = 8
        for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[name].update(batch_size=16, num_workers=0, persistent_workers=False)
            cfg[name].dataset = dict(type='FashionMNISTDataset', data_root=gz_root,
                                     test_mode=name != 'train_dataloader')
        cfg.train_dataloader.dataset.update(subset_size=30, subset_seed=0)
        cfg.train_cfg.max_epochs = 1
        cfg.randomness = dict(seed=0)
        cfg.work_dir = str(tmp_path / 'run')
        runner = Runner.from_cfg(cfg)
        runner.train()
        rows = runner.model.pskd_memory.rows
        assert rows.shape == (30, 10)
        torch.testing.assert_close(rows.sum(1), torch.ones(30))
        metrics = runner.val_loop.run()
        assert 'ensemble/top1_acc' in metrics and 'exit4/ece' in metrics

    def test_kdml_torchvision_loss_step(self, gz_root, epoch_info):
        def net(arch):
            return dict(type='ImageClassifier', num_classes=10,
                        backbone=dict(type='TorchvisionBackbone', arch=arch, small_input=True,
                                      pretrained=False))

        model = MODELS.build(dict(
            type='KDMLDistiller', teacher=net('resnet18'), students=[net('resnet18')] * 2,
            teacher_mode='online', cls_weight=0.1, kd_weight=0.45, ml_weight=0.45,
            temperature=2.0,
            data_preprocessor=dict(type='ClsDataPreprocessor', mean=[55.84] * 3,
                                   std=[84.61] * 3)))
        ds = FashionMNISTDataset(gz_root, subset_size=4)
        epoch_info(0, 1)
        data = model.data_preprocessor(default_collate([ds[i] for i in range(4)]), True)
        losses = model(**data, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(total) and any('student1' in k for k in losses)
