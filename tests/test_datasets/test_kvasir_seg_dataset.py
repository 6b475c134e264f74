import json
import os
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest
from mmdet.structures import DetDataSample

import mmkd.datasets.kvasir_seg_dataset as kvasir_module
from mmkd.datasets.kvasir_seg_dataset import KvasirSegDataset
from mmkd.datasets.kvasir_seg_parsing import mask_boxes, seeded_val_ids
from mmkd.registry import DATASETS
from mmkd.testing import write_kvasir_seg, write_split_files

NUM_IMAGES = 12


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    """A read-only generated Kvasir-SEG set; tests that change files copy it first."""
    return write_kvasir_seg(str(tmp_path_factory.mktemp('kvasir')), num_images=NUM_IMAGES,
                            multi_polyp_every=5, img_size_range=((120, 160), (150, 200)))


@pytest.fixture
def root(generated, tmp_path):
    return shutil.copytree(generated, str(tmp_path / 'Kvasir-SEG'))


@pytest.fixture
def warnings_log(monkeypatch):
    messages = []
    monkeypatch.setattr(kvasir_module, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    return messages


def _json(root, name='kavsir_bboxes.json'):
    with open(osp.join(root, name)) as f:
        return json.load(f)


def _write_json(root, content, name='kavsir_bboxes.json'):
    with open(osp.join(root, name), 'w') as f:
        json.dump(content, f)


def _infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def _boxes(ds):
    return {d['img_id']: [i['bbox'] for i in d['instances']] for d in _infos(ds)}


def _ids(ds):
    return [ds.get_data_info(i)['img_id'] for i in range(len(ds))]


def _one_image_root(tmp_path, size=(40, 50), entry=None, mask=None):
    """A dataset of one black image 'a' (height, width = size), its JSON entry and mask."""
    root = str(tmp_path / 'one')
    os.makedirs(osp.join(root, 'images'))
    os.makedirs(osp.join(root, 'masks'))
    cv2.imwrite(osp.join(root, 'images', 'a.jpg'), np.zeros(size + (3, ), np.uint8))
    if mask is not None:
        cv2.imwrite(osp.join(root, 'masks', 'a.jpg'), mask)
    if entry is not None:
        _write_json(root, {'a': entry})
    return root


def _entry(*boxes, height=40, width=50):
    return dict(height=height, width=width,
                bbox=[dict(label='polyp', xmin=b[0], ymin=b[1], xmax=b[2], ymax=b[3])
                      for b in boxes])


class TestKvasirSegDataset:

    def test_writer_layout(self, generated):
        ann = _json(generated)
        assert len(ann) == NUM_IMAGES
        for sample_id, entry in ann.items():
            assert re.fullmatch(r'[a-z0-9]{25}', sample_id)
            img = cv2.imread(osp.join(generated, 'images', sample_id + '.jpg'))
            assert img.shape[:2] == (entry['height'], entry['width'])
            assert osp.isfile(osp.join(generated, 'masks', sample_id + '.jpg'))
        # every 5th image (0, 5, 10) has two polyps
        assert sorted(len(e['bbox']) for e in ann.values()) == [1] * 9 + [2] * 3

    def test_json_boxes(self, generated, warnings_log):
        ds = KvasirSegDataset(data_root=generated, split='all')
        assert len(ds) == NUM_IMAGES
        assert ds.metainfo['classes'] == ('polyp', )
        ann = _json(generated)
        assert _boxes(ds) == {k: [[b['xmin'], b['ymin'], b['xmax'], b['ymax']]
                                  for b in v['bbox']] for k, v in ann.items()}
        info = ds.get_data_info(0)
        sample_id = info['img_id']
        assert info['img_path'] == osp.join(generated, 'images', sample_id + '.jpg')
        assert info['mask_path'] == osp.join(generated, 'masks', sample_id + '.jpg')
        assert (info['height'], info['width']) == (ann[sample_id]['height'],
                                                   ann[sample_id]['width'])
        assert all(i['bbox_label'] == 0 and i['ignore_flag'] == 0 for i in info['instances'])
        assert _ids(ds) == sorted(ann)
        assert ds.get_cat_ids(0) == [0] * len(info['instances'])
        assert warnings_log[-1].endswith(f'{NUM_IMAGES} images, 15 boxes, 3 multi-polyp images')

    def test_registered(self, generated):
        ds = DATASETS.build(dict(type='KvasirSegDataset', data_root=generated, split='val'))
        assert isinstance(ds, KvasirSegDataset)

    def test_mask_boxes_match_json(self, generated):
        from_json = KvasirSegDataset(data_root=generated, split='all')
        from_mask = KvasirSegDataset(data_root=generated, split='all', box_source='mask')
        assert _boxes(from_mask) == {k: sorted(v) for k, v in _boxes(from_json).items()}
        assert {d['box_source'] for d in _infos(from_mask)} == {'mask'}

    def test_mask_two_components(self, tmp_path, warnings_log):
        mask = np.zeros((40, 50), np.uint8)
        mask[5:15, 10:20] = 255  # rows 5..14, columns 10..19 -> [10, 5, 20, 15]
        mask[20:30, 30:31] = 255  # a one-column bar: rows 20..29, column 30 -> [30, 20, 31, 30]
        mask[35, 45] = 255  # a 1-pixel speck, below min_mask_area
        root = _one_image_root(tmp_path, mask=mask)
        path = osp.join(root, 'masks', 'a.png')
        cv2.imwrite(path, mask)  # lossless, so the boxes are exact
        assert mask_boxes(path, 16) == ([[10, 5, 20, 15]], 2, (40, 50))
        assert mask_boxes(path, 1) == ([[10, 5, 20, 15], [30, 20, 31, 30], [45, 35, 46, 36]],
                                       0, (40, 50))
        os.remove(path)
        mask[20:30, 30:32] = 255  # widen the bar to 20 pixels so it counts
        cv2.imwrite(osp.join(root, 'masks', 'a.jpg'), mask)
        ds = KvasirSegDataset(data_root=root, split='all', box_source='mask')
        assert _boxes(ds) == {'a': [[10, 5, 20, 15], [30, 20, 32, 30]]}
        assert any('ignored 1 mask components smaller than min_mask_area=16' in m
                   for m in warnings_log)

    def test_mask_noisy_three_channel_jpeg(self, tmp_path):
        rng = np.random.default_rng(0)
        mask = np.zeros((60, 80), np.uint8)
        cv2.ellipse(mask, (30, 25), (12, 8), 0, 0, 360, 255, -1)
        cols = np.nonzero(mask.any(0))[0]
        rows = np.nonzero(mask.any(1))[0]
        expected = [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]
        noisy = mask.astype(np.int16) + rng.integers(-40, 41, size=mask.shape)
        bgr = np.repeat(np.clip(noisy, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        root = _one_image_root(tmp_path, size=(60, 80))
        cv2.imwrite(osp.join(root, 'masks', 'a.jpg'), bgr, [cv2.IMWRITE_JPEG_QUALITY, 75])
        assert cv2.imread(osp.join(root, 'masks', 'a.jpg'), cv2.IMREAD_UNCHANGED).ndim == 3
        ds = KvasirSegDataset(data_root=root, split='all', box_source='mask')
        assert _boxes(ds) == {'a': [expected]}

    def test_missing_mask(self, root):
        sample_id = sorted(_json(root))[0]
        os.remove(osp.join(root, 'masks', sample_id + '.jpg'))
        # box_source='json' needs no mask: mask_path is None
        ds = KvasirSegDataset(data_root=root, split='all')
        assert {d['img_id']: d['mask_path'] for d in _infos(ds)}[sample_id] is None
        with pytest.raises(FileNotFoundError, match=f'{sample_id}.jpg has no mask'):
            KvasirSegDataset(data_root=root, split='all', box_source='mask')

    def test_auto_box_source(self, root):
        ann = _json(root)
        first, second = sorted(ann)[:2]
        kept = ann.pop(first)
        _write_json(root, ann)
        with pytest.raises(ValueError, match=f"1 images have no entry.*{first}.jpg.*'auto'"):
            KvasirSegDataset(data_root=root, split='all')
        ds = KvasirSegDataset(data_root=root, split='all', box_source='auto')
        sources = {d['img_id']: d['box_source'] for d in _infos(ds)}
        assert sources[first] == 'mask' and sources[second] == 'json'
        assert _boxes(ds)[first] == sorted([b['xmin'], b['ymin'], b['xmax'], b['ymax']]
                                           for b in kept['bbox'])
        os.remove(osp.join(root, 'masks', first + '.jpg'))
        with pytest.raises(FileNotFoundError,
                           match=f'{first}.jpg has no entry in .*kavsir_bboxes.json and has no '
                           'mask'):
            KvasirSegDataset(data_root=root, split='all', box_source='auto')

    def test_image_missing_on_disk(self, root):
        sample_id = sorted(_json(root))[3]
        os.remove(osp.join(root, 'images', sample_id + '.jpg'))
        with pytest.raises(FileNotFoundError, match=f'lists 1 images that are not in .*'
                           f'{sample_id}'):
            KvasirSegDataset(data_root=root, split='all')

    def test_malformed_json(self, root):
        with open(osp.join(root, 'kavsir_bboxes.json'), 'w') as f:
            f.write('{"a": {"height": 10,\n "width": }}')
        with pytest.raises(ValueError, match=r'kavsir_bboxes.json is not valid JSON: '
                           r'Expecting value at line 2 column 11 \(char 31\)'):
            KvasirSegDataset(data_root=root, split='all')
        os.remove(osp.join(root, 'kavsir_bboxes.json'))
        with pytest.raises(FileNotFoundError, match=r"kavsir_bboxes.json \(dataset.ann_file\) "
                           'not found'):
            KvasirSegDataset(data_root=root, split='all')

    @pytest.mark.parametrize('change, message', [
        (lambda e: e.pop('width'), "has no 'width' key"),
        (lambda e: e.pop('bbox'), "has no 'bbox' key"),
        (lambda e: e.update(bbox={'xmin': 1}), "'bbox' must be a list of boxes, got dict"),
        (lambda e: e['bbox'][0].pop('ymax'), r"'bbox'\[0\] has no 'ymax' key"),
        (lambda e: e['bbox'][0].update(xmin='12'), r"'bbox'\[0\]\['xmin'\] must be a number"),
        (lambda e: e['bbox'][0].update(xmax=None), r"'bbox'\[0\]\['xmax'\] must be a number"),
        (lambda e: e['bbox'][0].update(label='adenoma'), r"\['label'\] is 'adenoma'"),
        (lambda e: e.update(height='40'), "'height' must be a positive number"),
    ])
    def test_incomplete_entry(self, tmp_path, change, message):
        entry = _entry((5, 5, 20, 20))
        change(entry)
        root = _one_image_root(tmp_path, entry=entry)
        with pytest.raises(ValueError, match=r"kavsir_bboxes.json: entry 'a'.*" + message):
            KvasirSegDataset(data_root=root, split='all')

    def test_boxes_outside_image(self, tmp_path, warnings_log):
        # image is 50 wide, 40 high
        entry = _entry((-5, 10, 20, 30), (40, 30, 60, 45), (10, 10, 20, 20), (60, 0, 70, 10),
                       (30, 5, 30, 15), (35, 20, 32, 25))
        root = _one_image_root(tmp_path, entry=entry)
        ds = KvasirSegDataset(data_root=root, split='all')
        assert _boxes(ds) == {'a': [[0, 10, 20, 30], [40, 30, 50, 40], [10, 10, 20, 20]]}
        assert any('clipped 2 boxes' in m for m in warnings_log)
        assert any('dropped 3 boxes' in m for m in warnings_log)

    def test_image_left_without_boxes(self, tmp_path):
        root = _one_image_root(tmp_path, entry=_entry((60, 0, 70, 10), (5, 5, 5, 9)))
        with pytest.raises(ValueError, match=r'a.jpg has no polyp box \(source: json, 2 boxes '
                           'dropped'):
            KvasirSegDataset(data_root=root, split='all')
        root = _one_image_root(tmp_path / 'b', entry=_entry())
        with pytest.raises(ValueError, match=r'a.jpg has no polyp box \(source: json\)'):
            KvasirSegDataset(data_root=root, split='all')
        root = _one_image_root(tmp_path / 'c', mask=np.zeros((40, 50), np.uint8))
        with pytest.raises(ValueError, match=r'a.jpg has no polyp box \(source: mask\)'):
            KvasirSegDataset(data_root=root, split='all', box_source='mask')

    def test_size_mismatch(self, tmp_path):
        root = _one_image_root(tmp_path, entry=_entry((5, 5, 20, 20), height=50, width=40))
        with pytest.raises(ValueError, match=r'a.jpg is 50x40 \(width x height\) on disk but '
                           r'.*kavsir_bboxes.json says 40x50'):
            KvasirSegDataset(data_root=root, split='all')
        mask = np.zeros((30, 50), np.uint8)
        mask[5:15, 5:15] = 255
        root = _one_image_root(tmp_path / 'm', mask=mask)
        with pytest.raises(ValueError, match=r'a.jpg is 50x30 but its image .*a.jpg is 50x40'):
            KvasirSegDataset(data_root=root, split='all', box_source='mask')

    def test_seeded_split(self, generated):
        ids = sorted(_json(generated))
        train = KvasirSegDataset(data_root=generated, split='train')
        val = KvasirSegDataset(data_root=generated, split='val')
        assert len(val) == round(0.2 * NUM_IMAGES) and len(train) == NUM_IMAGES - len(val)
        assert sorted(_ids(train) + _ids(val)) == ids
        assert _ids(KvasirSegDataset(data_root=generated, split='val')) == _ids(val)
        assert set(_ids(val)) == seeded_val_ids(ids, 0.2, 0)
        others = [seeded_val_ids(ids, 0.2, s) for s in range(1, 4)]
        assert any(o != set(_ids(val)) for o in others)
        assert _ids(KvasirSegDataset(data_root=generated, split='val', seed=1)) == \
            sorted(others[0])
        assert len(KvasirSegDataset(data_root=generated, split='val', val_ratio=0.5)) == 6

    def test_official_split_files(self, root, warnings_log):
        ids = sorted(_json(root))
        train_ids, val_ids = ids[:9], ids[9:11]  # ids[11] is in neither list
        write_split_files(root, [i + '.jpg' for i in train_ids], val_ids)  # ext optional
        train = KvasirSegDataset(data_root=root, split='train')
        val = KvasirSegDataset(data_root=root, split='val', seed=3)  # seed is irrelevant
        assert _ids(train) == train_ids and _ids(val) == val_ids
        assert any('1 images of' in m and ids[11] in m for m in warnings_log)
        assert len(KvasirSegDataset(data_root=root, split='all')) == NUM_IMAGES
        assert len(KvasirSegDataset(data_root=root, split='val', split_files=None)) == 2
        write_split_files(root, train_ids + ['cxxxxxxxxxxxxxxxxxxxxxxxx'], val_ids)
        with pytest.raises(ValueError, match=r"train.txt lists 1 ids with no image/annotation"
                           r".*cxxxxxxxxxxxxxxxxxxxxxxxx"):
            KvasirSegDataset(data_root=root, split='val')
        write_split_files(root, train_ids, val_ids + train_ids[:1])
        with pytest.raises(ValueError, match='both list'):
            KvasirSegDataset(data_root=root, split='val')
        write_split_files(root, train_ids, [])
        with pytest.raises(ValueError, match='the val split is empty'):
            KvasirSegDataset(data_root=root, split='val')
        os.remove(osp.join(root, 'val.txt'))
        with pytest.raises(FileNotFoundError, match='val.txt is missing while .*train.txt'):
            KvasirSegDataset(data_root=root, split='train')

    def test_empty_split(self, tmp_path):
        mask = np.zeros((40, 50), np.uint8)
        mask[5:15, 5:15] = 255
        root = _one_image_root(tmp_path, mask=mask)
        ds = KvasirSegDataset(data_root=root, split='train', box_source='mask')
        assert len(ds) == 1
        with pytest.raises(ValueError, match=r'the val split is empty \(1 images found, '
                           r'seeded split'):
            KvasirSegDataset(data_root=root, split='val', box_source='mask')

    def test_bad_arguments(self, generated):
        with pytest.raises(ValueError, match='dataset.split'):
            KvasirSegDataset(data_root=generated, split='test')
        with pytest.raises(ValueError, match='dataset.box_source'):
            KvasirSegDataset(data_root=generated, box_source='xml')
        with pytest.raises(ValueError, match='dataset.val_ratio'):
            KvasirSegDataset(data_root=generated, val_ratio=1.0)

    def test_hyperkvasir_naming(self, tmp_path):
        root = write_kvasir_seg(str(tmp_path / 'segmented-images'), num_images=4,
                                json_name='bounding-boxes.json', id_style='uuid',
                                img_size_range=((100, 120), (100, 120)))
        ids = sorted(_json(root, 'bounding-boxes.json'))
        assert all(re.fullmatch(r'[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}',
                                i) for i in ids)
        with pytest.raises(FileNotFoundError, match='kavsir_bboxes.json'):
            KvasirSegDataset(data_root=root, split='all')
        ds = KvasirSegDataset(data_root=root, ann_file='bounding-boxes.json', split='all')
        assert _ids(ds) == ids
        # other folder names, and JSON keys written as file names
        os.rename(osp.join(root, 'images'), osp.join(root, 'imgs'))
        os.rename(osp.join(root, 'masks'), osp.join(root, 'gt'))
        ann = _json(root, 'bounding-boxes.json')
        _write_json(root, {k + '.jpg': v for k, v in ann.items()}, 'bounding-boxes.json')
        moved = KvasirSegDataset(data_root=root, ann_file='bounding-boxes.json', split='all',
                                 data_prefix=dict(img='imgs/', mask='gt/'))
        assert _boxes(moved) == _boxes(ds)
        assert moved.get_data_info(0)['mask_path'] == osp.join(root, 'gt', ids[0] + '.jpg')

    def test_mmdet_pipeline(self, generated):
        pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(128, 128), keep_ratio=True),
            dict(type='PackDetInputs'),
        ]
        ds = KvasirSegDataset(data_root=generated, split='all', pipeline=pipeline)
        idx = next(i for i in range(len(ds)) if len(ds.get_data_info(i)['instances']) == 2)
        info = ds.get_data_info(idx)
        out = ds[idx]
        sample = out['data_samples']
        assert isinstance(sample, DetDataSample)
        assert sample.img_id == info['img_id']
        assert sample.ori_shape == (info['height'], info['width'])
        scale = 128 / max(info['height'], info['width'])
        assert max(sample.img_shape) == 128
        assert tuple(out['inputs'].shape[1:]) == sample.img_shape
        w_scale, h_scale = sample.scale_factor
        assert w_scale == pytest.approx(scale, abs=0.01)
        expected = np.array([i['bbox'] for i in info['instances']], np.float32)
        expected *= np.array([w_scale, h_scale, w_scale, h_scale], np.float32)
        np.testing.assert_allclose(sample.gt_instances.bboxes.numpy(), expected, rtol=1e-5)
        assert sample.gt_instances.labels.tolist() == [0, 0]
        assert len(sample.ignored_instances) == 0
