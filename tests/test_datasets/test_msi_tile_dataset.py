import os
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate

import mmkd.datasets.msi_tile_dataset as msi_module
from mmkd.datasets.msi_tile_dataset import (MSITileDataset, class_label, split_patients,
                                            tcga_patient_id)
from mmkd.registry import DATASETS
from mmkd.testing import write_msi_tiles


@pytest.fixture(scope='module')
def kaggle_root(tmp_path_factory):
    return write_msi_tiles(str(tmp_path_factory.mktemp('kaggle')), 'kaggle', num_patients=20,
                           tiles_per_patient=2, img_size=32)


@pytest.fixture(scope='module')
def kather_root(tmp_path_factory):
    return write_msi_tiles(str(tmp_path_factory.mktemp('kather')), 'kather', num_patients=6,
                           tiles_per_patient=2, img_size=32)


@pytest.fixture
def warnings_log(monkeypatch):
    messages = []
    monkeypatch.setattr(msi_module, 'print_log', lambda msg, **kwargs: messages.append(msg))
    return messages


def _write_tile(path, rgb=(255, 0, 0), size=8):
    os.makedirs(osp.dirname(path), exist_ok=True)
    tile = np.zeros((size, size, 3), np.uint8)
    tile[:] = rgb
    tile[0, 1] = (10, 20, 30)  # one marked pixel: row 0, column 1
    assert cv2.imwrite(path, cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
    return path


def _kaggle_name(patient, token='AAAAAAAAAAAA', ext='.png'):
    return f'blk-{token}-{patient}-01Z-00-DX1{ext}'


class TestMSITileDataset:

    @pytest.mark.parametrize('name, label', [
        ('MSIMUT', 1), ('MSIMUT_JPEG', 1), ('MSI', 1), ('msimut', 1),
        ('MSS', 0), ('MSS_JPEG', 0), ('TRAIN', None), ('README', None)])
    def test_class_label(self, name, label):
        assert class_label(name) == label

    def test_patient_id(self):
        assert tcga_patient_id('/x/blk-AAAAAAAAAAAA-TCGA-A6-2671-01Z-00-DX1.jpg') == 'TCGA-A6-2671'
        assert tcga_patient_id('blk-XXXX-tcga-aa-3518-01Z-00-DX1.png') == 'TCGA-AA-3518'
        with pytest.raises(ValueError, match='several barcodes'):
            tcga_patient_id('TCGA-A6-2671_TCGA-AA-3518.png')

    def test_kaggle_layout(self, kaggle_root):
        train = MSITileDataset(kaggle_root, 'train', img_size=32)
        test = MSITileDataset(kaggle_root, 'test', img_size=32)
        assert train.layout == test.layout == 'kaggle'
        assert train.metainfo == dict(classes=('MSS', 'MSI'))
        assert len(train) + len(test) == 40
        assert train.img_paths == sorted(train.img_paths)  # MSIMUT_JPEG sorts before MSS_JPEG
        for ds in (train, test):
            for path, label, patient in zip(ds.img_paths, ds.labels, ds.patients):
                folder = osp.basename(osp.dirname(path))
                assert label == {'MSIMUT_JPEG': 1, 'MSS_JPEG': 0}[folder]
                assert patient in osp.basename(path)
        assert set(train.labels.tolist()) == {0, 1}

    def test_kather_layout(self, kather_root, tmp_path):
        for split, num_patients in (('train', 4), ('test', 2)):
            ds = MSITileDataset(kather_root, split, img_size=32)
            assert ds.layout == 'kather' and ds.patients is None and ds.num_patients is None
            assert len(ds) == 2 * num_patients
            for path, label in zip(ds.img_paths, ds.labels):
                assert osp.dirname(osp.dirname(path)) == osp.join(kather_root, split.upper())
                assert label == {'MSIMUT': 1, 'MSS': 0}[osp.basename(osp.dirname(path))]
            assert sorted(ds.labels.tolist()) == [0] * num_patients + [1] * num_patients
        lower = str(tmp_path / 'lower')
        shutil.copytree(kather_root, lower)
        os.rename(osp.join(lower, 'TEST'), osp.join(lower, 'test'))
        assert len(MSITileDataset(lower, 'test', layout='kather', img_size=32)) == 4

    def test_item_format_and_rgb_order(self, tmp_path):
        root = str(tmp_path)
        _write_tile(osp.join(root, 'TRAIN', 'MSS', 'a.png'), rgb=(200, 100, 50))
        _write_tile(osp.join(root, 'TRAIN', 'MSIMUT', 'b.PNG'), rgb=(255, 0, 0))
        ds = MSITileDataset(root, img_size=8)
        assert [osp.basename(p) for p in ds.img_paths] == ['b.PNG', 'a.png']
        item = ds[1]
        assert set(item) == {'inputs', 'data_samples'}
        assert item['data_samples'] == dict(gt_label=0, sample_idx=1)
        img = item['inputs']
        assert img.dtype == torch.uint8 and img.shape == (3, 8, 8)
        assert img[:, 3, 3].tolist() == [200, 100, 50]  # R, G, B
        assert img[:, 0, 1].tolist() == [10, 20, 30]  # row-major (C, H, W)
        assert ds[0]['data_samples'] == dict(gt_label=1, sample_idx=0)
        assert ds[0]['inputs'][:, 5, 5].tolist() == [255, 0, 0]

    @pytest.mark.parametrize('img_size', [16, 48])
    def test_resize(self, kather_root, img_size):
        img = MSITileDataset(kather_root, img_size=img_size)[0]['inputs']
        assert img.shape == (3, img_size, img_size) and img.dtype == torch.uint8

    def test_patient_split_has_no_leakage(self, kaggle_root):
        train = MSITileDataset(kaggle_root, 'train', img_size=32)
        test = MSITileDataset(kaggle_root, 'test', img_size=32)
        all_patients = {tcga_patient_id(p) for p in train.img_paths + test.img_paths}
        assert len(all_patients) == 20
        assert not set(train.patients) & set(test.patients)
        assert set(train.patients) | set(test.patients) == all_patients
        assert train.num_patients + test.num_patients == 20
        assert sorted(train.img_paths + test.img_paths) == sorted(
            osp.join(kaggle_root, d, f) for d in os.listdir(kaggle_root)
            for f in os.listdir(osp.join(kaggle_root, d)))

    def test_split_is_seeded(self, kaggle_root):
        def test_patients(seed):
            return set(MSITileDataset(kaggle_root, 'test', seed=seed, img_size=32).patients)

        assert test_patients(0) == test_patients(0)
        assert test_patients(0) != test_patients(1)  # 4845 possible 4-of-20 choices
        assert split_patients(['b', 'a', 'c', 'd'], 0.5, 3) == split_patients(
            ['d', 'c', 'a', 'b', 'a'], 0.5, 3)  # order and repeats do not matter

    @pytest.mark.parametrize('test_ratio, num_test', [(0.2, 4), (0.5, 10), (0.33, 7), (0.01, 1),
                                                      (0.99, 19)])
    def test_test_ratio(self, kaggle_root, test_ratio, num_test):
        test = MSITileDataset(kaggle_root, 'test', test_ratio=test_ratio, img_size=32)
        train = MSITileDataset(kaggle_root, 'train', test_ratio=test_ratio, img_size=32)
        assert (test.num_patients, train.num_patients) == (num_test, 20 - num_test)
        assert len(test) == 2 * num_test

    def test_one_patient_per_split_at_least(self):
        assert len(split_patients(['p1', 'p2'], 0.01, 0)) == 1
        assert len(split_patients(['p1', 'p2'], 0.99, 0)) == 1
        assert split_patients(['p1'], 0.5, 0) == set()

    def test_single_patient_test_split_raises(self, tmp_path):
        root = str(tmp_path)
        _write_tile(osp.join(root, 'MSS_JPEG', _kaggle_name('TCGA-AA-3518')))
        assert MSITileDataset(root, 'train', img_size=8).num_patients == 1
        with pytest.raises(ValueError, match=re.escape(root) + ': the test split is empty'):
            MSITileDataset(root, 'test', img_size=8)

    def test_file_without_barcode_raises(self, tmp_path):
        root = str(tmp_path)
        _write_tile(osp.join(root, 'MSS_JPEG', _kaggle_name('TCGA-AA-3518')))
        bad = _write_tile(osp.join(root, 'MSIMUT_JPEG', 'blk-AAAAAAAAAAAA.png'))
        with pytest.raises(ValueError, match=re.escape(bad) + ': file name has no TCGA'):
            MSITileDataset(root)

    @pytest.mark.parametrize('content', ['truncated', 'garbage', 'empty'])
    def test_corrupt_image_raises(self, kaggle_root, tmp_path, content):
        root = str(tmp_path / 'root')
        shutil.copytree(kaggle_root, root)
        ds = MSITileDataset(root, img_size=32)
        path = ds.img_paths[3]
        with open(path, 'rb') as f:
            raw = f.read()
        data = {'truncated': raw[:len(raw) // 2], 'garbage': b'not an image' * 10,
                'empty': b''}[content]
        with open(path, 'wb') as f:
            f.write(data)
        ds[2]  # other files still decode
        with pytest.raises(ValueError, match=re.escape(path) + ' cannot be decoded'):
            ds[3]

    def test_empty_or_unknown_root_raises(self, tmp_path):
        root = str(tmp_path)
        os.makedirs(osp.join(root, 'other'))
        with pytest.raises(ValueError, match=re.escape(root) + ' has neither train/test folders '
                           'nor MSI\\*/MSS\\* class folders: expected .*MSIMUT_JPEG'):
            MSITileDataset(root)
        with pytest.raises(ValueError, match=re.escape(root) + r' has no MSI\*/MSS\* class '
                           r"folders \(found \['other'\]\)"):
            MSITileDataset(root, layout='kaggle')
        with pytest.raises(ValueError, match=re.escape(root) + ' has no TRAIN'):
            MSITileDataset(root, layout='kather')
        with pytest.raises(FileNotFoundError, match='nowhere is not a folder'):
            MSITileDataset(osp.join(root, 'nowhere'))

    def test_empty_class_folder_raises(self, tmp_path):
        root = str(tmp_path)
        _write_tile(osp.join(root, 'TRAIN', 'MSS', 'a.png'))
        os.makedirs(osp.join(root, 'TRAIN', 'MSIMUT'))
        os.makedirs(osp.join(root, 'TEST', 'MSS'))
        expected = osp.join(root, 'TRAIN', 'MSIMUT')
        with pytest.raises(ValueError, match=re.escape(expected) + ' holds no .png'):
            MSITileDataset(root)
        with pytest.raises(ValueError, match=re.escape(osp.join(root, 'TEST', 'MSS'))):
            MSITileDataset(root, 'test')

    def test_ambiguous_layout_raises(self, tmp_path):
        root = str(tmp_path)
        _write_tile(osp.join(root, 'TRAIN', 'MSS', 'a.png'))
        _write_tile(osp.join(root, 'MSS_JPEG', _kaggle_name('TCGA-AA-3518')))
        with pytest.raises(ValueError, match="set dataset.layout='kather' or 'kaggle'"):
            MSITileDataset(root)
        assert MSITileDataset(root, layout='kather', img_size=8).img_paths == [
            osp.join(root, 'TRAIN', 'MSS', 'a.png')]

    def test_non_tiles_are_skipped_loudly(self, tmp_path, warnings_log):
        root = str(tmp_path)
        for name in ('a.png', 'b.jpeg', 'c.JPG', 'd.tif', '._a.png'):
            _write_tile(osp.join(root, 'TRAIN', 'MSS', name))
        open(osp.join(root, 'TRAIN', 'MSS', 'notes.txt'), 'w').close()
        os.makedirs(osp.join(root, 'TRAIN', 'MSS', 'nested'))
        ds = MSITileDataset(root, img_size=8)
        assert [osp.basename(p) for p in ds.img_paths] == ['a.png', 'b.jpeg', 'c.JPG', 'd.tif']
        assert any('skipped 3 entries' in m and "'._a.png'" in m for m in warnings_log)
        assert any("no ['MSI'] tiles" in m for m in warnings_log)  # only MSS tiles present

    @pytest.mark.parametrize('kwargs, key', [
        (dict(split='val'), 'dataset.split'), (dict(layout='zip'), 'dataset.layout'),
        (dict(test_ratio=0.0), 'dataset.test_ratio'), (dict(test_ratio=1.0), 'dataset.test_ratio'),
        (dict(img_size=0), 'dataset.img_size')])
    def test_bad_args_raise(self, kaggle_root, kwargs, key):
        with pytest.raises(ValueError, match=re.escape(key)):
            MSITileDataset(kaggle_root, **kwargs)

    def test_default_collate_and_registry(self, kaggle_root):
        ds = DATASETS.build(dict(type='MSITileDataset', data_root=kaggle_root, img_size=24))
        batch = default_collate([ds[i] for i in range(4)])
        assert batch['inputs'].shape == (4, 3, 24, 24) and batch['inputs'].dtype == torch.uint8
        samples = batch['data_samples']
        assert set(samples) == {'gt_label', 'sample_idx'}
        for key in samples:
            assert samples[key].dtype == torch.int64 and samples[key].shape == (4, )
        assert samples['sample_idx'].tolist() == [0, 1, 2, 3]
        assert samples['gt_label'].tolist() == ds.labels[:4].tolist()


class TestWriteMSITiles:

    def test_layouts_and_names(self, kaggle_root, kather_root):
        assert sorted(os.listdir(kaggle_root)) == ['MSIMUT_JPEG', 'MSS_JPEG']
        assert sorted(os.listdir(kather_root)) == ['TEST', 'TRAIN']
        for split in ('TEST', 'TRAIN'):
            assert sorted(os.listdir(osp.join(kather_root, split))) == ['MSIMUT', 'MSS']
        pattern = r'blk-[A-Z]{12}-TCGA-[A-Z0-9]{2}-[0-9]{4}-01Z-00-DX1\.'
        for name in os.listdir(osp.join(kaggle_root, 'MSS_JPEG')):
            assert re.fullmatch(pattern + 'jpg', name)
        for name in os.listdir(osp.join(kather_root, 'TRAIN', 'MSIMUT')):
            assert re.fullmatch(pattern + 'png', name)

    def test_each_patient_has_one_class(self, kaggle_root):
        classes = {}
        for folder in os.listdir(kaggle_root):
            for name in os.listdir(osp.join(kaggle_root, folder)):
                classes.setdefault(tcga_patient_id(name), set()).add(folder)
        assert len(classes) == 20 and all(len(c) == 1 for c in classes.values())

    def test_classes_differ_in_texture(self, tmp_path):
        root = write_msi_tiles(str(tmp_path), 'kather', num_patients=4, tiles_per_patient=3)
        ds = MSITileDataset(root, img_size=64)

        def nuclei(img):
            dark = (img.numpy().astype(int).sum(0) < 420).astype(np.uint8)
            return cv2.connectedComponents(dark)[0] - 1

        counts = {c: [nuclei(ds[i]['inputs']) for i in range(len(ds)) if ds.labels[i] == c]
                  for c in (0, 1)}
        assert min(counts[1]) > max(counts[0])  # MSI: many small nuclei, MSS: few large ones
