"""Corrupt and truncated image files end in an error naming the file."""
import glob
import json
import os.path as osp
import re

import numpy as np
import pytest

import mmkd.datasets.transforms.load_image_checked as checked_module
from mmkd.datasets import KvasirSegDataset, MSITileDataset
from mmkd.registry import TRANSFORMS


def damage(path, how):
    raw = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(raw[:len(raw) // 2] if how == 'truncated' else b'not an image' * 20)
    return path


def kvasir(root, pipeline=()):
    return KvasirSegDataset(data_root=root, split='all', pipeline=list(pipeline))


@pytest.mark.parametrize('how', ['corrupt', 'truncated'])
def test_msi_tile(msi_root, how):
    ds = MSITileDataset(msi_root, img_size=32)
    path = damage(ds.img_paths[1], how)
    with pytest.raises(ValueError, match=re.escape(path) + r' cannot be decoded as an image '
                       r'\(corrupt or truncated\): replace it'):
        ds[1]


def test_kvasir_corrupt_image_fails_at_build(kvasir_root):
    path = damage(sorted(glob.glob(osp.join(kvasir_root, 'images', '*.jpg')))[1], 'corrupt')
    with pytest.raises(ValueError, match=re.escape(path) + ' cannot be read as an image'):
        kvasir(kvasir_root)


def test_kvasir_truncated_image_fails_in_the_config_pipeline(kvasir_root):
    # A truncated JPEG keeps its header, so the dataset builds; the configs' loader refuses it.
    from mmengine.config import Config
    pipeline = Config.fromfile('configs/kvasir_kdml_v3.py').train_dataloader.dataset.pipeline
    assert pipeline[0].type == 'LoadImageChecked'
    ds = kvasir(kvasir_root, pipeline)
    path = damage(ds.get_data_info(2)['img_path'], 'truncated')
    ds[1]  # an intact image still loads
    with pytest.raises(ValueError, match=re.escape(path) + ' cannot be decoded as an image'):
        ds[2]


def test_kvasir_truncated_image_is_caught_when_the_decoder_fills_it_in(kvasir_root,
                                                                      monkeypatch):
    # Some OpenCV versions return a truncated JPEG with its missing rows in grey.
    monkeypatch.setattr(checked_module.mmcv, 'imfrombytes',
                        lambda *args, **kwargs: np.full((60, 70, 3), 128, np.uint8))
    path = damage(kvasir(kvasir_root).get_data_info(0)['img_path'], 'truncated')
    load = TRANSFORMS.build(dict(type='LoadImageChecked'))
    with pytest.raises(ValueError, match=re.escape(path) + ' cannot be read as an image: it is '
                       'truncated or corrupt .*replace it with an intact copy'):
        load(dict(img_path=path))


def test_kvasir_loader_output_equals_mmcv(kvasir_root):
    info = kvasir(kvasir_root).get_data_info(0)
    ours = TRANSFORMS.build(dict(type='LoadImageChecked'))(dict(img_path=info['img_path']))
    mmcv_ = TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(img_path=info['img_path']))
    assert np.array_equal(ours['img'], mmcv_['img'])
    assert ours['img_shape'] == ours['ori_shape'] == (info['height'], info['width'])


def test_kvasir_corrupt_mask(kvasir_root):
    # Boxes come from the mask when the JSON has no entry for the image.
    with open(osp.join(kvasir_root, 'kavsir_bboxes.json')) as f:
        entries = json.load(f)
    sample_id = sorted(entries)[0]
    del entries[sample_id]
    with open(osp.join(kvasir_root, 'kavsir_bboxes.json'), 'w') as f:
        json.dump(entries, f)
    mask = damage(osp.join(kvasir_root, 'masks', sample_id + '.jpg'), 'corrupt')
    with pytest.raises(ValueError, match=f'mask {re.escape(mask)} cannot be decoded'):
        KvasirSegDataset(data_root=kvasir_root, split='all', box_source='auto', pipeline=[])


# ---------------------------------------------------------------- grayscale and RGBA
def to_mode(path, mode, ext=None):
    """Re-save ``path`` as a ``mode`` image (as ``ext`` if given, removing the original)."""
    from PIL import Image
    with Image.open(path) as img:
        converted = img.convert(mode)
    target = osp.splitext(path)[0] + ext if ext else path
    converted.save(target)
    if target != path:
        import os
        os.remove(path)
    return target


def test_msi_grayscale_and_rgba_tiles_are_counted_once(msi_root, mmkd_log):
    tiles = MSITileDataset(msi_root, split='train', img_size=32).img_paths
    to_mode(tiles[0], 'L')
    to_mode(tiles[1], 'L')
    rgba = to_mode(tiles[2], 'RGBA', '.png')
    ds = MSITileDataset(msi_root, split='train', img_size=32)
    notes = [m for m in mmkd_log if 'converted' in m]
    assert notes == [
        f'MSITileDataset (train split of {msi_root}): 3 of {len(ds)} images are not 3-channel '
        'RGB and are converted to RGB when loaded: 2 grayscale (mode L, copied to 3 channels), '
        '1 RGBA (mode RGBA, alpha dropped), e.g. '
        f'{[tiles[0], tiles[1], rgba]}']
    assert ds[list(ds.img_paths).index(rgba)]['inputs'].shape == (3, 32, 32)
    MSITileDataset(msi_root, split='test', img_size=32)  # another dataset: its own count
    assert len([m for m in mmkd_log if 'converted' in m]) == 1  # the test split has none


def test_kvasir_grayscale_image_is_counted(kvasir_root, mmkd_log):
    ds = kvasir(kvasir_root)
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    to_mode(paths[1], 'L')
    ds = kvasir(kvasir_root)
    assert [m for m in mmkd_log if 'converted' in m] == [
        f'KvasirSegDataset (all split of {kvasir_root}): 1 of {len(ds)} images are not '
        '3-channel RGB and are converted to RGB when loaded: 1 grayscale (mode L, copied to 3 '
        f'channels), e.g. {[paths[1]]}']


def test_rgb_images_are_not_reported(kvasir_root, mmkd_log):
    kvasir(kvasir_root)
    assert not [m for m in mmkd_log if 'converted' in m]
