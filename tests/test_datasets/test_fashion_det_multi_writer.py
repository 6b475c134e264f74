import json
import os
import os.path as osp
import re
import runpy
import sys

import cv2
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmkd.datasets.fashion_det_multi_writer import (paste_pieces, place, render_scene,
                                                    write_fashion_det_multi)
from mmkd.datasets.fashion_mnist_dataset import FASHION_MNIST_CLASSES, load_fashion_mnist
from mmkd.registry import DATASETS, METRICS, MODELS
from mmkd.testing import write_fashion_mnist, write_idx
from mmkd.utils import register_all_modules, set_data_root

CONFIG = 'configs/fashion_mnist/det-kdml_gfl-r18w32-to-r18w8x2_1xb8-6e_fashion-det-multi.py'
TOOL = 'tools/data/make_fashion_det.py'
SIZE, NUM_TRAIN, NUM_VAL, SIDES = 64, 10, 5, (12, 32)


def _coco(root, split):
    with open(osp.join(root, 'annotations', f'{split}.json')) as f:
        return json.load(f)


def _piece(value, side, x0, y0, inside=None):
    scaled = np.full((side, side), value, np.uint8)
    return scaled, np.ones((side, side), bool) if inside is None else inside, x0, y0


@pytest.fixture(scope='module')
def idx_root(tmp_path_factory):
    # fashion_like_images: class c is a (8 + c) wide, (20 - c) high rectangle, labels i % 10
    root = str(tmp_path_factory.mktemp('idx'))
    write_fashion_mnist(root, num_train=60, num_test=30)
    return root


@pytest.fixture(scope='module')
def det_root(idx_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('det'))
    counts = write_fashion_det_multi(out, data_root=idx_root, num_train=NUM_TRAIN,
                                     num_val=NUM_VAL, size=SIZE, side_range=SIDES, seed=0)
    assert counts['train'] == NUM_TRAIN and counts['val'] == NUM_VAL
    assert counts['train_articles'] == len(_coco(out, 'train')['annotations'])
    return out


class TestPastePieces:

    def test_later_piece_hides_earlier(self):
        img = np.zeros((20, 20, 3), np.float32)
        # A: x 2..7, y 3..8 (36 px); B on top: x 5..8, y 6..9, hides A's x 5..7, y 6..8 (9 px).
        # A keeps its row 3 and column 2, so its box is unchanged.
        boxes, areas = paste_pieces(img, [_piece(100, 6, 2, 3), _piece(200, 4, 5, 6)])
        assert boxes == [[2, 3, 8, 9], [5, 6, 9, 10]] and areas == [27, 16]
        assert (img[6:10, 5:9] == 200).all() and (img[3:6, 2:8] == 100).all()
        assert img[:3].sum() == 0 and img[10:].sum() == 0

    def test_box_of_visible_pixels_only(self):
        img = np.zeros((20, 20, 3), np.float32)
        inside = np.zeros((8, 8), bool)
        inside[1:7, 2:4] = True  # a 2 x 6 strap in an 8 x 8 square at (4, 4)
        # C covers A's upper 4 rows: A's visible part is rows 9..10, columns 6..7
        boxes, areas = paste_pieces(img, [_piece(90, 8, 4, 4, inside), _piece(50, 5, 5, 4)])
        assert boxes[0] == [6, 9, 8, 11] and areas[0] == 4
        assert img[4, 5].sum() == 3 * 50 and img[9, 4].sum() == 0  # C; outside the strap

    def test_fully_hidden_piece_has_no_box(self):
        img = np.zeros((10, 10, 3), np.float32)
        boxes, areas = paste_pieces(img, [_piece(10, 3, 2, 2), _piece(20, 6, 1, 1)])
        assert boxes == [[], [1, 1, 7, 7]] and areas == [0, 36]


class TestPlace:

    def test_first_article_anywhere_then_visibility_kept(self):
        rng = np.random.default_rng(0)
        owner = np.full((40, 40), -1, np.int64)
        totals = []
        for _ in range(6):
            inside = np.ones((14, 14), bool)
            pos = place(owner, inside, totals, 0.3, rng)
            if pos is None:
                continue
            totals.append(int(inside.sum()))
            x0, y0 = pos
            assert (owner[y0:y0 + 14, x0:x0 + 14] == len(totals) - 1).all()
            visible = np.bincount(owner[owner >= 0], minlength=len(totals))
            assert (visible >= 0.7 * np.asarray(totals)).all(), visible
        assert len(totals) >= 2

    def test_no_room_leaves_owner_unchanged(self):
        owner = np.full((16, 16), -1, np.int64)
        assert place(owner, np.ones((16, 16), bool), [], 0.0, np.random.default_rng(0)) == (0, 0)
        before = owner.copy()
        # a second full-image article would hide all of the first
        assert place(owner, np.ones((16, 16), bool), [256], 0.5,
                     np.random.default_rng(0)) is None
        assert (owner == before).all()


class TestRenderScene:

    def test_native_size_article_box_is_its_extent(self):
        article = np.zeros((28, 28), np.uint8)
        article[5:20, 9:16] = 200  # 7 wide, 15 high
        rgb, placed = render_scene([article], [], 40, (28, 28), 0.4, 25,
                                   np.random.default_rng(0))
        assert rgb.shape == (40, 40, 3) and rgb.dtype == np.uint8
        (entry, ) = placed
        x1, y1, x2, y2 = entry['bbox']
        assert (entry['article'], entry['side'], entry['area'], entry['hidden']) == (0, 28, 105,
                                                                                    0.0)
        assert (x2 - x1, y2 - y1) == (7, 15)
        # the grey article on the red texture: the box's interior is R == G == B == 200
        inner = rgb[y1 + 2:y2 - 2, x1 + 2:x2 - 2].astype(int)
        assert np.abs(inner - 200).max() <= 2

    def test_sides_in_range_and_order_kept(self):
        articles = [np.full((28, 28), 255, np.uint8) for _ in range(4)]
        rng = np.random.default_rng(3)
        for _ in range(5):
            _, placed = render_scene(articles, articles[:2], 96, (16, 40), 0.4, 25, rng)
            ks = [p['article'] for p in placed]
            assert ks[0] == 0 and ks == sorted(ks)
            for p in placed:
                assert 16 <= p['side'] <= 40
                x1, y1, x2, y2 = p['bbox']
                assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 96
                # max_hidden 0.4 of a full square
                assert p['area'] == round((1 - p['hidden']) * p['side'] ** 2)
                assert p['hidden'] <= 0.4 and p['area'] >= 0.6 * p['side'] ** 2
            assert placed[-1]['hidden'] == 0  # nothing on top of the last one


class TestWriteFashionDetMulti:

    def test_layout(self, det_root):
        for split, num in (('train', NUM_TRAIN), ('val', NUM_VAL)):
            coco = _coco(det_root, split)
            assert [c['name'] for c in coco['categories']] == list(FASHION_MNIST_CLASSES)
            assert [c['id'] for c in coco['categories']] == list(range(1, 11))
            names = [f'{split}_{i:05d}.jpg' for i in range(num)]
            assert [i['file_name'] for i in coco['images']] == names
            assert [i['id'] for i in coco['images']] == list(range(num))
            ids = [a['id'] for a in coco['annotations']]
            assert ids == list(range(1, len(ids) + 1))
            for name in names:
                assert cv2.imread(osp.join(det_root, 'images', name)).shape == (SIZE, SIZE, 3)
        assert len(os.listdir(osp.join(det_root, 'images'))) == NUM_TRAIN + NUM_VAL

    def test_boxes_classes_sizes_and_counts(self, idx_root, det_root):
        for split, source in (('train', 'train'), ('val', 't10k')):
            _, labels = load_fashion_mnist(idx_root, source == 't10k')
            coco = _coco(det_root, split)
            per_image = np.bincount([a['image_id'] for a in coco['annotations']],
                                    minlength=len(coco['images']))
            assert per_image.min() >= 1 and per_image.max() <= 4
            indices = [a['source']['index'] for a in coco['annotations']]
            assert len(set(indices)) == len(indices)  # every article used once
            for a in coco['annotations']:
                assert a['source']['split'] == source
                assert a['category_id'] == labels[a['source']['index']] + 1
                x, y, w, h = a['bbox']
                side = a['source']['side']
                assert SIDES[0] <= side <= SIDES[1]
                assert 0 <= x and 0 <= y and x + w <= SIZE and y + h <= SIZE
                assert 0 < w <= side and 0 < h <= side and 0 < a['area'] <= w * h
                assert 0 <= a['source']['hidden'] <= 0.4  # max_hidden
                assert a['iscrowd'] == 0

    def test_unoccluded_box_is_the_article_extent(self, idx_root, tmp_path):
        # side 28 = the IDX size: no resampling; class c is 8 + c wide and 20 - c high
        out = str(tmp_path / 'native')
        write_fashion_det_multi(out, data_root=idx_root, num_train=10, num_val=2, size=40,
                                side_range=(28, 28), num_range=(1, 1), fragment_range=(0, 0))
        for a in _coco(out, 'train')['annotations']:
            c = a['category_id'] - 1
            assert a['bbox'][2:] == [8 + c, 20 - c] and a['area'] == (8 + c) * (20 - c)

    def test_count_range(self, idx_root, tmp_path):
        out = str(tmp_path / 'counts')
        write_fashion_det_multi(out, data_root=idx_root, num_train=20, num_val=2, size=96,
                                side_range=(8, 16), num_range=(2, 3))
        per_image = np.bincount([a['image_id'] for a in _coco(out, 'train')['annotations']])
        assert set(per_image.tolist()) == {2, 3}

    def test_seeded(self, idx_root, det_root, tmp_path):
        kwargs = dict(data_root=idx_root, num_train=NUM_TRAIN, num_val=NUM_VAL, size=SIZE,
                      side_range=SIDES)
        write_fashion_det_multi(str(tmp_path / 'again'), seed=0, **kwargs)
        write_fashion_det_multi(str(tmp_path / 'other'), seed=1, **kwargs)
        for name in ('annotations/train.json', 'annotations/val.json', 'images/train_00003.jpg',
                     'images/val_00004.jpg'):
            data = [open(osp.join(root, name), 'rb').read()
                    for root in (det_root, str(tmp_path / 'again'), str(tmp_path / 'other'))]
            assert data[0] == data[1] != data[2], name

    def test_loads_with_coco_dataset_and_the_configs_pipeline(self, det_root):
        register_all_modules(init_default_scope=False)
        cfg = Config.fromfile(CONFIG)
        assert tuple(cfg.classes) == FASHION_MNIST_CLASSES
        set_data_root(cfg, det_root)
        for loader, split in ((cfg.train_dataloader, 'train'), (cfg.val_dataloader, 'val')):
            ds = DATASETS.build(loader.dataset)
            coco = _coco(det_root, split)
            assert len(ds) == len(coco['images'])
            for i in range(len(ds)):
                info = ds.get_data_info(i)
                anns = [a for a in coco['annotations'] if a['image_id'] == info['img_id']]
                assert [inst['bbox'] for inst in info['instances']] == [
                    [x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
                assert [inst['bbox_label'] for inst in info['instances']] == [
                    a['category_id'] - 1 for a in anns]
            out = ds[0]
            sample = out['data_samples']
            assert isinstance(sample, DetDataSample)
            assert out['inputs'].shape == (3, 128, 128)  # the config's Resize of 64 px x 2
            boxes = np.array([inst['bbox'] for inst in ds.get_data_info(0)['instances']], float)
            if split == 'train':
                boxes *= 2
                if sample.flip:
                    boxes[:, [0, 2]] = 128 - boxes[:, [2, 0]]
            np.testing.assert_allclose(sample.gt_instances.bboxes.numpy(), boxes, rtol=1e-5)

    def test_metric_reads_every_box_and_class(self, det_root):
        """GT as predictions: AP 100; the same boxes with a wrong class: AP 0 but mIoU 100,
        since mIoU reads each image's top box whatever its class."""
        coco = _coco(det_root, 'val')
        results = {}
        for shift in (0, 1):
            metric = METRICS.build(dict(type='DetIoUMetric', with_coco=True))
            metric.dataset_meta = dict(classes=FASHION_MNIST_CLASSES)
            samples = []
            for img in coco['images']:
                anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
                boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in
                                      (a['bbox'] for a in anns)], dtype=torch.float32)
                labels = torch.tensor([a['category_id'] - 1 for a in anns])
                pred = dict(bboxes=boxes, scores=torch.linspace(0.9, 0.5, len(anns)),
                            labels=(labels + shift) % 10)
                samples.append(dict(img_id=img['id'], ori_shape=(SIZE, SIZE),
                                    gt_instances=dict(bboxes=boxes, labels=labels),
                                    model_preds=dict(student0=pred)))
            metric.process({}, samples)
            results[shift] = metric.evaluate(len(samples))
        assert results[0]['student0/AP'] == pytest.approx(100)
        assert results[0]['student0/mIoU'] == pytest.approx(100)
        assert results[1]['student0/AP'] == pytest.approx(0)
        assert results[1]['student0/mIoU'] == pytest.approx(100)

    def test_configs_models_run_a_loss_step(self, det_root):
        register_all_modules(init_default_scope=False)
        cfg = Config.fromfile(CONFIG)
        set_data_root(cfg, det_root)
        ds = DATASETS.build(cfg.train_dataloader.dataset)
        model = MODELS.build(cfg.model)
        data = model.data_preprocessor(dict(
            inputs=[ds[i]['inputs'] for i in range(2)],
            data_samples=[ds[i]['data_samples'] for i in range(2)]), True)
        losses = model(**data, mode='loss')
        assert {'teacher.loss_cls', 'student0.loss_cls', 'student1.loss_cls'} <= set(losses)
        assert model.teacher.bbox_head.num_classes == 10
        assert model.teacher.bbox_head.stacked_convs > model.students[0].bbox_head.stacked_convs


class TestWriterErrors:

    def test_existing_set_needs_overwrite(self, idx_root, tmp_path):
        out = str(tmp_path / 'set')
        kwargs = dict(data_root=idx_root, num_train=3, num_val=1, size=SIZE, side_range=SIDES)
        write_fashion_det_multi(out, **kwargs)
        with pytest.raises(FileExistsError,
                           match=re.escape(out) + ' already holds images/ or annotations/'):
            write_fashion_det_multi(out, **kwargs)
        write_fashion_det_multi(out, overwrite=True, **dict(kwargs, num_train=2))
        assert len(os.listdir(osp.join(out, 'images'))) == 3

    def test_more_articles_than_the_split_has(self, idx_root, tmp_path):
        with pytest.raises(ValueError, match=re.escape(
                f'articles but the t10k split in {idx_root} has 30')):
            write_fashion_det_multi(str(tmp_path / 'x'), data_root=idx_root, num_train=2,
                                    num_val=20, num_range=(4, 4))
        assert not osp.exists(str(tmp_path / 'x'))

    @pytest.mark.parametrize('kwargs, message', [
        (dict(num_val=0), 'num_val must be a positive integer, got 0'),
        (dict(side_range=(2, 20)), 'side_range must be (low, high) pixels with 4 <= low'),
        (dict(side_range=(16, 80)), 'high <= size (64)'),
        (dict(num_range=(0, 2)), 'num_range must be (low, high) with 1 <= low <= high'),
        (dict(fragment_range=(2, 1)), 'fragment_range must be (low, high) with 0 <= low'),
        (dict(max_hidden=1.0), 'max_hidden must be in [0, 1)'),
        (dict(threshold=255), 'threshold must be in [0, 255)'),
    ])
    def test_bad_arguments(self, idx_root, tmp_path, kwargs, message):
        with pytest.raises(ValueError, match=re.escape(message)):
            write_fashion_det_multi(str(tmp_path / 'x'), data_root=idx_root, size=SIZE,
                                    **kwargs)

    def test_blank_article_names_the_file(self, idx_root, tmp_path):
        root = str(tmp_path / 'idx')
        write_fashion_mnist(root, num_train=20, num_test=10)
        write_idx(osp.join(root, 't10k-images-idx3-ubyte.gz'), np.zeros((10, 28, 28), np.uint8))
        with pytest.raises(ValueError, match=re.escape(osp.join(root, 't10k')) +
                           r'-images-idx3-ubyte\[\.gz\] article [0-9]+: no pixel above '
                           'threshold=25 at side'):
            write_fashion_det_multi(str(tmp_path / 'x'), data_root=root, num_train=2,
                                    num_val=2, size=SIZE, side_range=SIDES)

    def test_bad_label_file_is_named(self, tmp_path):
        root = str(tmp_path / 'idx')
        write_fashion_mnist(root, num_train=20, num_test=10)
        path = write_idx(osp.join(root, 'train-labels-idx1-ubyte.gz'),
                         np.full(20, 12, np.uint8))
        with pytest.raises(ValueError, match=re.escape(path) + ': sample 0 has label 12'):
            write_fashion_det_multi(str(tmp_path / 'x'), data_root=root, num_train=2,
                                    num_val=2, size=SIZE, side_range=SIDES)

    def test_missing_idx_files(self, tmp_path):
        with pytest.raises(FileNotFoundError, match='apt-get install -y dataset-fashion-mnist'):
            write_fashion_det_multi(str(tmp_path / 'x'), data_root=str(tmp_path / 'none'))
        assert not osp.exists(str(tmp_path / 'x'))


class TestTool:

    def test_multi_writes_the_coco_set(self, monkeypatch, idx_root, tmp_path, capsys):
        out = str(tmp_path / 'det')
        monkeypatch.setattr(sys, 'argv', [
            TOOL, '--multi', '--out', out, '--num-train', '6', '--num-val', '3', '--size', '48',
            '--side-range', '12', '24', '--data-root', idx_root])
        runpy.run_path(TOOL, run_name='__main__')
        printed = capsys.readouterr().out
        train, val = _coco(out, 'train'), _coco(out, 'val')
        assert printed.startswith(f'{out}: 6 train + 3 val images of 48x48 '
                                  f'({len(train["annotations"])} + '
                                  f'{len(val["annotations"])} articles) in ')
        assert len(train['images']) == 6 and len(val['images']) == 3
        assert cv2.imread(osp.join(out, 'images', 'val_00002.jpg')).shape == (48, 48, 3)
