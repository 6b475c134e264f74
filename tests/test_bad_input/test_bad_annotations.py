"""Broken labels, annotations and splits in the real on-disk formats: an error naming the
file, sample or key, or (where the dataset documents skipping) a warning that counts."""
import json
import os
import os.path as osp
import pickle
import re
import shutil

import pytest

import mmkd.datasets.kvasir_seg_dataset as kvasir_module
import mmkd.datasets.msi_tile_dataset as msi_module
from mmkd.datasets import CIFAR100Dataset, KvasirSegDataset, MSITileDataset
from mmkd.testing import write_split_files


@pytest.fixture
def warnings_log(monkeypatch):
    messages = []
    for module in (kvasir_module, msi_module):
        monkeypatch.setattr(module, 'print_log', lambda msg, **kwargs: messages.append(msg))
    return messages


def rewrite_pickle(path, **changes):
    with open(path, 'rb') as f:
        content = pickle.load(f, encoding='latin1')
    content.update(changes)
    with open(path, 'wb') as f:
        pickle.dump(content, f, protocol=2)


def edit_json(root, edit):
    path = osp.join(root, 'kavsir_bboxes.json')
    with open(path) as f:
        entries = json.load(f)
    first = sorted(entries)[0]
    edit(entries, first)
    with open(path, 'w') as f:
        json.dump(entries, f)
    return path, first


def kvasir(root, **kwargs):
    return KvasirSegDataset(data_root=root, pipeline=[], **{'split': 'all', **kwargs})


# ---------------------------------------------------------------- CIFAR-100 pickles
def test_cifar_truncated_pickle(cifar_root):
    path = osp.join(cifar_root, 'cifar-100-python', 'train')
    raw = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(raw[:len(raw) // 3])
    with pytest.raises(ValueError, match=re.escape(path) + ' is not a readable CIFAR pickle '
                       r'\(truncated or corrupt: .*download and unpack it again'):
        CIFAR100Dataset(cifar_root)


def test_cifar_label_outside_the_classes(cifar_root):
    path = osp.join(cifar_root, 'cifar-100-python', 'test')
    labels = CIFAR100Dataset(cifar_root, split='test').labels.tolist()
    labels[7] = 100
    rewrite_pickle(path, fine_labels=labels)
    with pytest.raises(ValueError, match=re.escape(path) + r': sample 7 has label 100 outside '
                       r'\[0, 100\) \(1 such samples\)'):
        CIFAR100Dataset(cifar_root, split='test')


def test_cifar_empty_split(cifar_root):
    path = osp.join(cifar_root, 'cifar-100-python', 'test')
    rewrite_pickle(path, data=CIFAR100Dataset(cifar_root, 'test').images.reshape(-1, 3072)[:0],
                   fine_labels=[], coarse_labels=[])
    with pytest.raises(ValueError, match=re.escape(path) + ' holds no images'):
        CIFAR100Dataset(cifar_root, split='test')


# ---------------------------------------------------------------- MSI tiles
def test_msi_folder_of_a_third_class_is_skipped_and_counted(msi_root, warnings_log):
    before = len(MSITileDataset(msi_root, img_size=32))
    third = osp.join(msi_root, 'ADI_JPEG')
    os.makedirs(third)
    shutil.copy(MSITileDataset(msi_root, img_size=32).img_paths[0], third)
    ds = MSITileDataset(msi_root, img_size=32)
    assert len(ds) == before and set(ds.labels.tolist()) <= {0, 1}
    assert any(m.startswith(f'{msi_root}: skipped 1 folders that are not MSI*/MSS* class '
                            "folders, e.g. ['ADI_JPEG']") for m in warnings_log), warnings_log


def test_msi_empty_split(msi_root):
    # One patient cannot be split by patient: the test split would be empty.
    ds = MSITileDataset(msi_root, img_size=32)
    keep = ds.patients[0]
    for path in MSITileDataset(msi_root, split='test', img_size=32).img_paths + ds.img_paths:
        if keep not in path:
            os.remove(path)
    for folder in os.listdir(msi_root):  # the other class's folder is empty now
        if not os.listdir(osp.join(msi_root, folder)):
            os.rmdir(osp.join(msi_root, folder))
    with pytest.raises(ValueError, match=re.escape(msi_root) + ': the test split is empty: '
                       'the 1 patient'):
        MSITileDataset(msi_root, split='test', img_size=32)


# ---------------------------------------------------------------- Kvasir-SEG
def test_kvasir_missing_mask(kvasir_root):
    _, sample_id = edit_json(kvasir_root, lambda e, first: e.pop(first))
    mask = osp.join(kvasir_root, 'masks', sample_id + '.jpg')
    os.remove(mask)
    with pytest.raises(FileNotFoundError, match=f'has no entry in .* and has no mask '
                       f'{re.escape(mask)}: add the mask'):
        kvasir(kvasir_root, box_source='auto')


def test_kvasir_malformed_json(kvasir_root):
    path = osp.join(kvasir_root, 'kavsir_bboxes.json')
    text = open(path).read()
    with open(path, 'w') as f:
        f.write(text[:-5])
    with pytest.raises(ValueError, match=re.escape(path) + r' is not valid JSON: .* at line 1 '
                       'column'):
        kvasir(kvasir_root)


@pytest.mark.parametrize('key, where', [('width', ''), ('xmax', r": 'bbox'\[0\]")])
def test_kvasir_incomplete_entry(kvasir_root, key, where):
    def drop(entries, first):
        entry = entries[first]
        del (entry if key == 'width' else entry['bbox'][0])[key]

    path, first = edit_json(kvasir_root, drop)
    with pytest.raises(ValueError, match=f"{re.escape(path)}: entry '{first}'{where} has no "
                       f"'{key}' key"):
        kvasir(kvasir_root)


def test_kvasir_box_partly_outside_is_clipped_and_counted(kvasir_root, warnings_log):
    def widen(entries, first):
        entries[first]['bbox'][0]['xmax'] = entries[first]['width'] + 50

    _, first = edit_json(kvasir_root, widen)
    ds = kvasir(kvasir_root)
    info = next(ds.get_data_info(i) for i in range(len(ds))
                if ds.get_data_info(i)['img_id'] == first)
    assert info['instances'][0]['bbox'][2] == info['width']
    assert any('clipped 1 boxes that reach outside their image' in m and first in m
               for m in warnings_log), warnings_log


@pytest.mark.parametrize('box', [dict(xmin=5000, ymin=5000, xmax=5100, ymax=5100),
                                 dict(xmin=10, ymin=10, xmax=10, ymax=30)],
                         ids=['outside', 'zero_width'])
def test_kvasir_box_outside_or_of_zero_size_is_dropped_and_counted(kvasir_root, warnings_log,
                                                                   box):
    def add(entries, first):
        entries[first]['bbox'].append(dict(label='polyp', **box))

    path, first = edit_json(kvasir_root, add)
    ds = kvasir(kvasir_root)
    kept = {info['img_id']: len(info['instances']) for info in map(ds.get_data_info,
                                                                    range(len(ds)))}
    assert kept[first] == len(json.load(open(path))[first]['bbox']) - 1
    assert any('dropped 1 boxes that lie entirely outside their image or have no area' in m
               and first in m for m in warnings_log), warnings_log


def test_kvasir_image_left_without_a_box(kvasir_root):
    def zero_all(entries, first):
        for box in entries[first]['bbox']:
            box['xmax'] = box['xmin']

    _, first = edit_json(kvasir_root, zero_all)
    with pytest.raises(ValueError, match=f'{re.escape(first)}.jpg has no polyp box .*dropped '
                       'as outside the image or empty'):
        kvasir(kvasir_root)


def test_kvasir_empty_split(kvasir_root):
    ds = kvasir(kvasir_root)
    ids = [ds.get_data_info(i)['img_id'] for i in range(len(ds))]
    write_split_files(kvasir_root, ids, [])
    with pytest.raises(ValueError, match=re.escape(kvasir_root) + r': the val split is empty '
                       r'\(4 images found, list .*val.txt\)'):
        kvasir(kvasir_root, split='val')
