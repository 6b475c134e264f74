import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose

from mmkd.datasets import KvasirSegDataset
from mmkd.testing import write_kvasir_seg, write_split_files


def ids_of(root, name='kavsir_bboxes.json'):
    with open(osp.join(root, name)) as f:
        return sorted(json.load(f))


def build(root, **kwargs):
    kwargs.setdefault('split', 'all')
    return KvasirSegDataset(data_root=str(root), **kwargs)


class TestKvasirSegDataset:

    def test_json_boxes_and_multi_polyp_images(self, tmp_path):
        write_kvasir_seg(str(tmp_path), num_images=8, multi_polyp_every=7)
        with open(tmp_path / 'kavsir_bboxes.json') as f:
            ann = json.load(f)
        ds = build(tmp_path)
        assert len(ds) == 8 and ds.metainfo['classes'] == ('polyp', )
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            entry = ann[info['img_id']]
            assert (info['height'], info['width']) == (entry['height'], entry['width'])
            assert [inst['bbox'] for inst in info['instances']] == [
                [b['xmin'], b['ymin'], b['xmax'], b['ymax']] for b in entry['bbox']]
            assert all(inst['bbox_label'] == 0 for inst in info['instances'])
        # images 1 and 8 (every 7th from the first) carry two polyps, and both boxes are kept
        assert sorted(len(ds.get_data_info(i)['instances']) for i in range(8)) == \
            [1] * 6 + [2] * 2

    def test_boxes_from_masks_one_per_component(self, tmp_path):
        write_kvasir_seg(str(tmp_path), num_images=2)
        sample_id = ids_of(tmp_path)[0]
        mask = np.zeros((240, 300, 3), np.uint8)  # 3-channel, as some real masks are
        mask[10:30, 20:60] = 255     # component 1: columns 20..59, rows 10..29
        mask[100:150, 200:210] = 250  # component 2, near-white after JPEG noise
        mask[200:202, 5:7] = 255     # 4 px: under min_mask_area, dropped
        cv2.imwrite(str(tmp_path / 'masks' / f'{sample_id}.jpg'), mask)
        img = cv2.imread(str(tmp_path / 'images' / f'{sample_id}.jpg'))
        cv2.imwrite(str(tmp_path / 'images' / f'{sample_id}.jpg'), cv2.resize(img, (300, 240)))
        with open(tmp_path / 'kavsir_bboxes.json') as f:
            ann = json.load(f)
        del ann[sample_id]  # no JSON entry: 'auto' falls back to the mask
        with open(tmp_path / 'kavsir_bboxes.json', 'w') as f:
            json.dump(ann, f)
        ds = build(tmp_path, box_source='auto')
        info = next(ds.get_data_info(i) for i in range(len(ds))
                    if ds.get_data_info(i)['img_id'] == sample_id)
        boxes = sorted(inst['bbox'] for inst in info['instances'])
        # xmax / ymax = last column / row + 1; JPEG noise may move an edge by a pixel
        np.testing.assert_allclose(boxes, [[20, 10, 60, 30], [200, 100, 210, 150]], atol=1)

    def test_seeded_split_is_deterministic_and_disjoint(self, tmp_path):
        write_kvasir_seg(str(tmp_path), num_images=20)
        train = build(tmp_path, split='train', seed=3, split_files=None)
        val = build(tmp_path, split='val', seed=3, split_files=None)
        ids = lambda ds: {ds.get_data_info(i)['img_id'] for i in range(len(ds))}  # noqa
        assert len(val) == 4 and len(train) == 16 and not ids(train) & ids(val)
        again = build(tmp_path, split='val', seed=3, split_files=None)
        assert ids(again) == ids(val)
        other = build(tmp_path, split='val', seed=4, split_files=None)
        assert ids(other) != ids(val)

    def test_official_lists_are_used(self, tmp_path):
        write_kvasir_seg(str(tmp_path), num_images=6)
        all_ids = ids_of(tmp_path)
        write_split_files(str(tmp_path), all_ids[:5], [all_ids[5] + '.jpg'])
        val = build(tmp_path, split='val')
        assert [val.get_data_info(0)['img_id']] == [all_ids[5]]
        assert len(build(tmp_path, split='train')) == 5

    def test_hyperkvasir_names(self, tmp_path):
        write_kvasir_seg(str(tmp_path), num_images=3, json_name='bounding-boxes.json',
                         id_style='uuid')
        ds = build(tmp_path, ann_file='bounding-boxes.json')
        assert len(ds) == 3 and ds.get_data_info(0)['img_id'].count('-') == 4

    def test_mmdet_pipeline_scales_boxes(self, tmp_path):
        write_kvasir_seg(str(tmp_path), num_images=2, multi_polyp_every=0)
        ds = build(tmp_path)
        info = ds.get_data_info(0)
        pipeline = Compose([
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(128, 128), keep_ratio=True),
            dict(type='PackDetInputs')
        ])
        out = pipeline(info)
        sample = out['data_samples']
        scale = sample.scale_factor
        expected = torch.tensor(info['instances'][0]['bbox'], dtype=torch.float32) * \
            torch.tensor([scale[0], scale[1], scale[0], scale[1]])
        torch.testing.assert_close(sample.gt_instances.bboxes.tensor[0], expected)
        assert max(out['inputs'].shape[1:]) == 128
