import os
import os.path as osp
import pickle
import re

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate

from mmkd.datasets import CIFAR100Dataset, load_cifar_pickle
from mmkd.testing import write_cifar100


def _dump(path, obj, protocol=2):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=protocol)


def _write_meta(root, num_fine=100):
    _dump(osp.join(root, 'cifar-100-python', 'meta'),
          dict(fine_label_names=[f'fine{i}' for i in range(num_fine)],
               coarse_label_names=[f'coarse{i}' for i in range(20)]))


def _write_split(root, data, fine_labels, split='train', protocol=2):
    entry = dict(data=data, fine_labels=list(fine_labels),
                 coarse_labels=[int(c) % 20 for c in fine_labels])
    path = osp.join(root, 'cifar-100-python', split)
    _dump(path, entry, protocol)
    return path


def _pattern_data(n):
    """Row 0 is arange(3072) % 251; other rows are constant n."""
    data = np.zeros((n, 3072), dtype=np.uint8)
    data[0] = np.arange(3072) % 251
    for i in range(1, n):
        data[i] = i
    return data


class _Payload:
    """Unpickling this would create ``marker`` (harmless stand-in for os.system)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


@pytest.fixture(scope='module')
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cifar'))
    write_cifar100(root, num_train_per_class=2, num_test_per_class=1, num_classes=100)
    return root


class TestCIFAR100Dataset:

    def test_reads_written_sample(self, sample_root):
        train = CIFAR100Dataset(sample_root, split='train')
        test = CIFAR100Dataset(sample_root, split='test')
        assert len(train) == 200 and len(test) == 100  # 100 classes x 2 / x 1
        assert train.classes == tuple(f'class_{c:03d}' for c in range(100))
        assert train.metainfo == dict(classes=train.classes)
        with open(osp.join(sample_root, 'cifar-100-python', 'train'), 'rb') as f:
            raw = pickle.load(f, encoding='latin1')
        for i in (0, 1, 199):
            item = train[i]
            assert set(item) == {'inputs', 'data_samples'}
            assert item['inputs'].dtype == torch.uint8
            assert item['inputs'].shape == (3, 32, 32)
            assert item['data_samples'] == dict(gt_label=raw['fine_labels'][i], sample_idx=i)
            assert torch.equal(item['inputs'].flatten(), torch.from_numpy(raw['data'][i]))
        assert sorted(train.labels.tolist()) == sorted(list(range(100)) * 2)

    def test_pixel_layout_is_planar_rgb_row_major(self, tmp_path):
        root = str(tmp_path)
        _write_meta(root)
        _write_split(root, _pattern_data(3), [4, 5, 6])
        ds = CIFAR100Dataset(root)
        img = ds[0]['inputs']
        # data[0][k] = k % 251 with k = c*1024 + y*32 + x (1024 R, 1024 G, 1024 B, row-major)
        assert img[0, 0, 0] == 0
        assert img[0, 0, 5] == 5  # R, row 0, column 5
        assert img[0, 1, 0] == 32  # R, row 1: k = 32
        assert img[1, 2, 3] == 87  # G: k = 1024 + 64 + 3 = 1091; 1091 - 4*251 = 87
        assert img[2, 31, 31] == 3071 % 251  # last B pixel: 3071 - 12*251 = 59
        assert img[2, 31, 31] == 59
        c, y, x = torch.meshgrid(torch.arange(3), torch.arange(32), torch.arange(32),
                                 indexing='ij')
        assert torch.equal(img.long(), (c * 1024 + y * 32 + x) % 251)
        assert (ds[2]['inputs'] == 2).all()
        assert ds[1]['data_samples'] == dict(gt_label=5, sample_idx=1)

    @pytest.mark.parametrize('protocol', [2, 3, 4, 5])
    def test_any_pickle_protocol(self, tmp_path, protocol):
        root = str(tmp_path)
        _write_meta(root)
        _write_split(root, _pattern_data(2), [0, 99], protocol=protocol)
        ds = CIFAR100Dataset(root)
        assert torch.equal(ds[0]['inputs'].flatten(), torch.from_numpy(_pattern_data(1)[0]))
        assert ds.labels.tolist() == [0, 99]

    def test_default_collate(self, sample_root):
        ds = CIFAR100Dataset(sample_root)
        batch = default_collate([ds[i] for i in range(4)])
        assert batch['inputs'].shape == (4, 3, 32, 32)
        assert batch['inputs'].dtype == torch.uint8
        samples = batch['data_samples']
        assert set(samples) == {'gt_label', 'sample_idx'}
        for key in samples:
            assert samples[key].dtype == torch.int64 and samples[key].shape == (4, )
        assert samples['sample_idx'].tolist() == [0, 1, 2, 3]
        assert samples['gt_label'].tolist() == ds.labels[:4].tolist()

    def test_coarse_labels(self, sample_root):
        fine = CIFAR100Dataset(sample_root)
        coarse = CIFAR100Dataset(sample_root, label_key='coarse_labels')
        assert len(coarse.classes) == 20
        assert coarse.classes == tuple(f'superclass_{c:02d}' for c in range(20))
        # write_cifar100 sets coarse = fine % 20
        assert coarse.labels.tolist() == (fine.labels % 20).tolist()
        assert coarse[3]['data_samples']['gt_label'] == fine.labels[3] % 20

    def test_missing_folder_raises(self, tmp_path):
        missing = osp.join(str(tmp_path), 'nowhere')
        expected = osp.join(missing, 'cifar-100-python', 'train')
        with pytest.raises(FileNotFoundError, match=re.escape(expected)):
            CIFAR100Dataset(missing)

    def test_truncated_pickle_raises(self, tmp_path, sample_root):
        root = str(tmp_path)
        folder = osp.join(root, 'cifar-100-python')
        os.makedirs(folder)
        with open(osp.join(sample_root, 'cifar-100-python', 'train'), 'rb') as f:
            raw = f.read()
        with open(osp.join(sample_root, 'cifar-100-python', 'meta'), 'rb') as f:
            meta = f.read()
        with open(osp.join(folder, 'meta'), 'wb') as f:
            f.write(meta)
        path = osp.join(folder, 'train')
        with open(path, 'wb') as f:
            f.write(raw[:len(raw) // 2])
        with pytest.raises(ValueError, match=re.escape(path) + ' is not a readable CIFAR'):
            CIFAR100Dataset(root)

    def test_forbidden_global_raises(self, tmp_path):
        path = str(tmp_path / 'train')
        with open(path, 'wb') as f:
            f.write(pickle.dumps({'data': os.system}, protocol=2))
        with pytest.raises(ValueError, match=re.escape(path) + '.*system is not allowed'):
            load_cifar_pickle(path)

    def test_code_in_pickle_is_not_executed(self, tmp_path):
        marker = str(tmp_path / 'executed')
        for protocol in (2, 5):
            path = str(tmp_path / f'evil{protocol}')
            _dump(path, {'data': _Payload(marker)}, protocol)
            with pytest.raises(ValueError, match=re.escape(path) + '.*open is not allowed'):
                load_cifar_pickle(path)
        assert not osp.exists(marker)
        # the raw pickle would have run it: the payload is real
        with open(path, 'rb') as f:
            pickle.load(f)['data'].close()
        assert osp.exists(marker)

    def test_class_instance_raises(self, tmp_path):
        path = str(tmp_path / 'train')
        # a plain instance pickles as a reference to its class
        _dump(path, {'data': torch.nn.Identity()})
        with pytest.raises(ValueError, match=re.escape(path) + '.*is not allowed'):
            load_cifar_pickle(path)

    def test_non_dict_pickle_raises(self, tmp_path):
        path = str(tmp_path / 'train')
        _dump(path, [1, 2, 3])
        with pytest.raises(ValueError, match=re.escape(path) + ' holds a list, expected a dict'):
            load_cifar_pickle(path)

    def test_label_out_of_range_raises(self, tmp_path):
        root = str(tmp_path)
        _write_meta(root)
        path = _write_split(root, _pattern_data(3), [0, 100, 5])
        with pytest.raises(ValueError,
                           match=re.escape(path) + r': sample 1 has label 100 outside \[0, 100\)'):
            CIFAR100Dataset(root)

    def test_negative_label_raises(self, tmp_path):
        root = str(tmp_path)
        _write_meta(root)
        path = _write_split(root, _pattern_data(3), [0, 1, -1])
        with pytest.raises(ValueError, match=re.escape(path) + ': sample 2 has label -1'):
            CIFAR100Dataset(root)

    @pytest.mark.parametrize('data', [
        np.zeros((2, 3071), dtype=np.uint8),
        np.zeros((2, 3, 32, 32), dtype=np.uint8),
        np.zeros((2, 3072), dtype=np.float32),
    ])
    def test_wrong_data_shape_or_dtype_raises(self, tmp_path, data):
        root = str(tmp_path)
        _write_meta(root)
        path = _write_split(root, data, [0, 1])
        with pytest.raises(ValueError,
                           match=re.escape(path) + r': data must be uint8 of shape \(N, 3072\)'):
            CIFAR100Dataset(root)

    def test_label_count_mismatch_raises(self, tmp_path):
        root = str(tmp_path)
        _write_meta(root)
        path = _write_split(root, _pattern_data(3), [0, 1])
        with pytest.raises(ValueError, match=re.escape(path) + ': 2 labels for 3 images'):
            CIFAR100Dataset(root)

    def test_missing_keys_raise(self, tmp_path):
        root = str(tmp_path)
        folder = osp.join(root, 'cifar-100-python')
        _dump(osp.join(folder, 'meta'), dict(fine_label_names=['a'] * 100))
        _write_split(root, _pattern_data(2), [0, 1])
        with pytest.raises(ValueError, match="has no 'coarse_label_names' entry"):
            CIFAR100Dataset(root, label_key='coarse_labels')
        _dump(osp.join(folder, 'train'), dict(data=_pattern_data(2)))
        with pytest.raises(ValueError,
                           match=re.escape(osp.join(folder, 'train')) + " has no 'fine_labels'"):
            CIFAR100Dataset(root)

    def test_bad_split_raises(self, sample_root):
        with pytest.raises(ValueError, match="dataset.split must be 'train' or 'test', got 'val'"):
            CIFAR100Dataset(sample_root, split='val')
