import json
import os
import os.path as osp
import re
import runpy
import sys

import cv2
import numpy as np
import pytest
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmkd.datasets.fashion_det_writer import encoded_mask, render_article, write_fashion_det
from mmkd.datasets.kvasir_seg_parsing import mask_boxes
from mmkd.registry import DATASETS
from mmkd.testing import write_fashion_mnist, write_idx
from mmkd.testing.idx_format import fashion_like_images
from mmkd.utils import set_data_root

SIZE, NUM_TRAIN, NUM_VAL = 64, 12, 6
KVASIR_CONFIG = 'configs/_base_/datasets/kvasir_seg.py'
TOOL = 'tools/data/make_fashion_det.py'


def _write_idx_set(root, train_label, test_label, num=20):
    """IDX files whose train articles are all class ``train_label`` and test articles all
    ``test_label`` (``fashion_like_images``: class c is 8 + c wide and 20 - c high)."""
    rng = np.random.default_rng(0)
    for prefix, label in (('train', train_label), ('t10k', test_label)):
        labels = np.full(num, label, np.uint8)
        write_idx(osp.join(root, f'{prefix}-images-idx3-ubyte.gz'),
                  fashion_like_images(labels, rng))
        write_idx(osp.join(root, f'{prefix}-labels-idx1-ubyte.gz'), labels)
    return root


@pytest.fixture(scope='module')
def idx_root(tmp_path_factory):
    return _write_idx_set(str(tmp_path_factory.mktemp('idx')), train_label=0, test_label=9)


@pytest.fixture(scope='module')
def det_root(idx_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('det'))
    counts = write_fashion_det(out, data_root=idx_root, num_train=NUM_TRAIN, num_val=NUM_VAL,
                               size=SIZE, seed=0)
    assert counts == dict(train=NUM_TRAIN, val=NUM_VAL)
    return out


def _json(root, name='kavsir_bboxes.json'):
    with open(osp.join(root, name)) as f:
        return json.load(f)


def _extent(mask_path):
    rows, cols = np.nonzero(cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE) > 127)
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


class TestRender:

    def test_mask_is_the_articles_pixels_above_threshold(self):
        article = np.zeros((28, 28), np.uint8)
        article[4:14, 6:12] = 200  # 6 wide, 10 high
        article[14:20, 6:12] = 20  # below threshold 25: background, not article
        rgb, mask = render_article(article, 128, 56, 25, np.random.default_rng(0))
        assert rgb.shape == (128, 128, 3) and rgb.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 255}
        rows, cols = np.nonzero(mask)
        # 2x bilinear (cv2, half-pixel centres): output x samples source (x + 0.5) / 2 - 0.5.
        # Columns 6..11 -> x = 11 (source 5.25: 0.25 * 200 = 50 > 25) .. 24 (11.75: 50):
        # 14 px. Rows 4..13 -> y = 7 (3.25: 50) .. 28 (13.75: 0.25 * 200 + 0.75 * 20 = 65);
        # y = 29 is 14.25: 20, not above 25. 14 x 22 px.
        assert cols.max() + 1 - cols.min() == 14 and rows.max() + 1 - rows.min() == 22
        # all of it but the 4 corners (0.25 * 0.25 * 200 = 12.5 <= 25)
        assert (mask > 0).sum() == 14 * 22 - 4
        # the article's grey replaces the red texture: R == G == B in the mask's interior
        inner = cv2.erode(mask, np.ones((7, 7), np.uint8)) > 0
        assert inner.sum() > 100
        assert np.abs(rgb[inner].astype(int) - 200).max() <= 2
        outside = mask == 0
        assert (rgb[outside][:, 0].astype(int) - rgb[outside][:, 1]).mean() > 40  # mucosa

    def test_encoded_mask_box_is_the_decoded_extent(self):
        mask = np.zeros((40, 50), np.uint8)
        mask[5:9, 10:31] = 255
        mask[20, 40] = 255  # a separate pixel: still inside the one box
        data, box = encoded_mask(mask, 100)
        assert box == [10, 5, 41, 21]
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert (decoded > 127).sum() == (mask > 0).sum()
        assert encoded_mask(np.zeros((8, 8), np.uint8), 90)[1] == []


class TestWriteFashionDet:

    def test_layout(self, det_root):
        train = [f'train_{i:05d}' for i in range(NUM_TRAIN)]
        val = [f'val_{i:05d}' for i in range(NUM_VAL)]
        for folder in ('images', 'masks'):
            assert sorted(os.listdir(osp.join(det_root, folder))) == sorted(
                i + '.jpg' for i in train + val)
        for name, ids in (('train.txt', train), ('val.txt', val)):
            with open(osp.join(det_root, name)) as f:
                assert f.read().split() == ids
        ann = _json(det_root)
        assert sorted(ann) == sorted(train + val)
        for sample_id, entry in ann.items():
            assert (entry['height'], entry['width']) == (SIZE, SIZE)
            assert len(entry['bbox']) == 1 and entry['bbox'][0]['label'] == 'polyp'
            img = cv2.imread(osp.join(det_root, 'images', sample_id + '.jpg'))
            assert img.shape == (SIZE, SIZE, 3)

    def test_boxes_are_the_masks_extents(self, det_root):
        for sample_id, entry in _json(det_root).items():
            box = [entry['bbox'][0][k] for k in ('xmin', 'ymin', 'xmax', 'ymax')]
            mask_path = osp.join(det_root, 'masks', sample_id + '.jpg')
            assert box == _extent(mask_path)
            # these articles are one rectangle each: one component, the same box
            assert mask_boxes(mask_path, 16)[0] == [box]

    def test_train_from_train_split_val_from_t10k(self, det_root):
        sources = _json(det_root, 'fashion_sources.json')
        ann = _json(det_root)
        for sample_id, src in sources.items():
            is_val = sample_id.startswith('val_')
            assert src['split'] == ('t10k' if is_val else 'train')
            assert (src['label'], src['class']) == ((9, 'Ankle boot') if is_val else
                                                    (0, 'T-shirt/top'))
            b = ann[sample_id]['bbox'][0]
            width, height = b['xmax'] - b['xmin'], b['ymax'] - b['ymin']
            # class 0 articles are 8 x 20 (tall), class 9 are 17 x 11 (wide)
            assert (width > height) == is_val
        for split, num in (('train', NUM_TRAIN), ('t10k', NUM_VAL)):
            indices = [s['index'] for s in sources.values() if s['split'] == split]
            assert len(set(indices)) == num and max(indices) < 20

    def test_seeded(self, idx_root, det_root, tmp_path):
        again = str(tmp_path / 'again')
        other = str(tmp_path / 'other')
        write_fashion_det(again, data_root=idx_root, num_train=NUM_TRAIN, num_val=NUM_VAL,
                          size=SIZE, seed=0)
        write_fashion_det(other, data_root=idx_root, num_train=NUM_TRAIN, num_val=NUM_VAL,
                          size=SIZE, seed=1)
        assert _json(again) == _json(det_root) != _json(other)
        for name in ('images/train_00003.jpg', 'masks/val_00002.jpg'):
            with open(osp.join(again, name), 'rb') as a, open(osp.join(det_root, name),
                                                               'rb') as b:
                assert a.read() == b.read()

    def test_scale_range_sets_the_article_size(self, idx_root, tmp_path):
        out = str(tmp_path / 'big')
        write_fashion_det(out, data_root=idx_root, num_train=4, num_val=2, size=SIZE,
                          scale_range=(1.0, 1.0))
        for entry in _json(out).values():
            b = entry['bbox'][0]
            # a full-image article: class 0 is 20/28 of the side high, class 9 17/28 wide
            assert max(b['xmax'] - b['xmin'], b['ymax'] - b['ymin']) >= 17 / 28 * SIZE - 2

    def test_loads_with_kvasir_dataset_and_pipeline(self, det_root):
        cfg = Config.fromfile(KVASIR_CONFIG)
        set_data_root(cfg, det_root)
        ann = _json(det_root)
        for loader, num in ((cfg.train_dataloader, NUM_TRAIN), (cfg.val_dataloader, NUM_VAL)):
            ds = DATASETS.build(loader.dataset)
            assert len(ds) == num
            for i in range(len(ds)):
                info = ds.get_data_info(i)
                assert len(info['instances']) == 1
                assert info['instances'][0]['bbox'] == _extent(info['mask_path'])
                b = ann[info['img_id']]['bbox'][0]
                assert info['instances'][0]['bbox'] == [b['xmin'], b['ymin'], b['xmax'],
                                                        b['ymax']]
            out = ds[0]
            sample = out['data_samples']
            assert isinstance(sample, DetDataSample)
            assert out['inputs'].shape == (3, 512, 512)  # the config's Resize to 512
            assert sample.gt_instances.labels.tolist() == [0]
            x1, y1, x2, y2 = ds.get_data_info(0)['instances'][0]['bbox']
            if loader is cfg.val_dataloader:  # test pipeline: boxes in original pixels
                expected = [x1, y1, x2, y2]
            else:  # Resize x 512 / SIZE, then RandomFlip
                s = 512 / SIZE
                expected = [512 - x2 * s, y1 * s, 512 - x1 * s, y2 * s] if sample.flip else \
                    [x1 * s, y1 * s, x2 * s, y2 * s]
            np.testing.assert_allclose(sample.gt_instances.bboxes.numpy(), [expected],
                                       rtol=1e-5)


class TestWriterErrors:

    def test_existing_set_needs_overwrite(self, idx_root, tmp_path):
        out = str(tmp_path / 'set')
        write_fashion_det(out, data_root=idx_root, num_train=4, num_val=2, size=SIZE)
        with pytest.raises(FileExistsError, match=re.escape(out) + ' already holds images/'):
            write_fashion_det(out, data_root=idx_root, num_train=3, num_val=1, size=SIZE)
        write_fashion_det(out, data_root=idx_root, num_train=3, num_val=1, size=SIZE,
                          overwrite=True)
        assert len(os.listdir(osp.join(out, 'images'))) == 4 and len(_json(out)) == 4

    def test_more_images_than_articles(self, idx_root, tmp_path):
        with pytest.raises(ValueError, match=re.escape(
                f'num_val is 21 but the t10k split in {idx_root} has 20 articles')):
            write_fashion_det(str(tmp_path / 'x'), data_root=idx_root, num_train=2, num_val=21)
        assert not osp.exists(str(tmp_path / 'x'))

    @pytest.mark.parametrize('kwargs, message', [
        (dict(num_train=0), 'num_train must be a positive integer, got 0'),
        (dict(size=8), 'size must be an integer >= 16'),
        (dict(scale_range=(0.5, 1.2)), 'scale_range must be (low, high) with 0 < low <= high'),
        (dict(scale_range=(0.6, 0.5)), 'scale_range must be (low, high)'),
        (dict(threshold=255), 'threshold must be in [0, 255)'),
    ])
    def test_bad_arguments(self, idx_root, tmp_path, kwargs, message):
        with pytest.raises(ValueError, match=re.escape(message)):
            write_fashion_det(str(tmp_path / 'x'), data_root=idx_root, **kwargs)

    def test_blank_article(self, tmp_path):
        root = _write_idx_set(str(tmp_path / 'idx'), 0, 9)
        write_idx(osp.join(root, 'train-images-idx3-ubyte.gz'), np.zeros((20, 28, 28), np.uint8))
        with pytest.raises(ValueError, match='train article [0-9]+ has no pixel above '
                           'threshold=25'):
            write_fashion_det(str(tmp_path / 'x'), data_root=root, num_train=2, num_val=1)

    def test_missing_idx_files(self, tmp_path):
        with pytest.raises(FileNotFoundError, match='apt-get install -y dataset-fashion-mnist'):
            write_fashion_det(str(tmp_path / 'x'), data_root=str(tmp_path / 'none'))
        assert not osp.exists(str(tmp_path / 'x'))


class TestTool:

    def _run(self, monkeypatch, *args):
        monkeypatch.setattr(sys, 'argv', [TOOL, *args])
        runpy.run_path(TOOL, run_name='__main__')

    def test_writes_the_set(self, monkeypatch, tmp_path, capsys):
        root = write_fashion_mnist(str(tmp_path / 'idx'), num_train=10, num_test=5)
        out = str(tmp_path / 'det')
        self._run(monkeypatch, '--out', out, '--num-train', '6', '--num-val', '3', '--size',
                  '48', '--data-root', osp.dirname(next(iter(root.values()))))
        assert capsys.readouterr().out.startswith(f'{out}: 6 train + 3 val images of 48x48 in ')
        assert len(_json(out)) == 9
        assert cv2.imread(osp.join(out, 'images', 'val_00002.jpg')).shape == (48, 48, 3)

    def test_missing_files_say_how_to_install(self, monkeypatch, tmp_path):
        with pytest.raises(SystemExit) as e:
            self._run(monkeypatch, '--out', str(tmp_path / 'det'), '--data-root',
                      str(tmp_path / 'none'))
        assert str(e.value).startswith('error: Fashion-MNIST file train-images-idx3-ubyte '
                                       'not found')
        assert 'apt-get update && apt-get install -y dataset-fashion-mnist' in str(e.value)
