"""Aggregation over images of :class:`~mmkd.evaluation.DetIoUMetric`.

The metric's per-image records (:mod:`.det_records`: ``img_id``,
``height``, ``width``, ``preds`` model name -> record array sorted by score,
``gt_bboxes``, ``gt_labels``, ``gt_ignore``) turned into SPEC.md §5.4's
numbers: top-1 IoU per image, mIoU and Acc@IoU, and COCO AP from pycocotools
on a ground truth built in memory.
"""
import contextlib
import io
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from .box_iou_metrics import pad_segments, top1_iou
from .det_records import COCO_MAX_DETS


def unique_images(results: Sequence[dict]) -> List[dict]:
    """The first record of each ``img_id``, in the order first seen (the DDP
    sampler pads the last batch by repeating samples)."""
    unique = {}
    for r in results:
        unique.setdefault(r['img_id'], r)
    return list(unique.values())


def model_names(results: Sequence[dict]) -> List[str]:
    """The model names of the records in the order first seen; raises
    ``ValueError`` unless every record holds the same models."""
    names = list(dict.fromkeys(n for r in results for n in r['preds']))
    all_names = set(names)
    for r in results:
        if r['preds'].keys() != all_names:
            raise ValueError(
                f'model name(s) {sorted(all_names - set(r["preds"]))} are '
                f'missing in the predictions of image {r["img_id"]!r} but '
                'present in others; every sample must carry the same '
                'models')
    return names


def pad_images(arrays: Sequence[np.ndarray]) -> Tuple[Tensor, Tensor]:
    """:func:`pad_segments` of per-image numpy arrays (n_i, *): padded
    (N, max n_i, *) tensor and valid mask (N, max n_i)."""
    return pad_segments(torch.from_numpy(np.concatenate(arrays)),
                        [len(a) for a in arrays])


def padded_ground_truth(results: Sequence[dict]) -> Tuple[Tensor, Tensor]:
    """GT boxes (N, G, 4) of the records and the mask (N, G) of the valid
    ones: real and not ignored."""
    gt_boxes, gt_valid = pad_images([r['gt_bboxes'] for r in results])
    gt_ignore, _ = pad_images([r['gt_ignore'] for r in results])
    return gt_boxes, gt_valid & ~gt_ignore


def records_top1_iou(preds: Sequence[np.ndarray], gt_boxes: Tensor,
                     gt_valid: Tensor) -> Tensor:
    """:func:`top1_iou` (N, ) of one model's records, sorted by score, so
    that the top-1 box is the first; GT from :func:`padded_ground_truth`."""
    boxes, valid = pad_images([p['bboxes'][:1] for p in preds])
    scores, _ = pad_images([p['scores'][:1] for p in preds])
    return top1_iou(boxes, scores, valid, gt_boxes, gt_valid)


def miou_and_acc(ious: Tensor, iou_thr: float) -> Tuple[float, float]:
    """Mean IoU and % of ``ious`` >= ``iou_thr``, both x100; NaN for none."""
    if not len(ious):
        return float('nan'), float('nan')
    # float64 means, so that e.g. 59 % does not read 58.999997
    miou = float(ious.double().mean()) * 100
    acc = float((ious >= iou_thr).double().mean()) * 100
    return miou, acc


def coco_ground_truth(results: Sequence[dict],
                      classes: Sequence[str]) -> COCO:
    """COCO ground truth of all records, image ids = record positions.

    Positions rather than ``img_id`` as image ids, since pycocotools
    needs int ids and the dataset's may be strings. Ignored GT boxes are
    crowd regions.
    """
    boxes = np.concatenate([r['gt_bboxes'] for r in results]).astype(
        np.float64)
    labels = np.concatenate([r['gt_labels'] for r in results])
    crowd = np.concatenate([r['gt_ignore'] for r in results]).astype(
        np.int64)
    if len(labels) and not 0 <= int(labels.min()) <= int(
            labels.max()) < len(classes):
        raise ValueError(
            f'GT labels span [{int(labels.min())}, {int(labels.max())}] '
            f'but `dataset_meta["classes"]` names {len(classes)} '
            'class(es)')
    img_idx = np.repeat(np.arange(len(results)),
                        [len(r['gt_labels']) for r in results])
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    # pycocotools needs one dict per annotation; ids start at 1
    annotations = [
        dict(id=i + 1, image_id=img, category_id=lab, bbox=box,
             area=box[2] * box[3], iscrowd=c)
        for i, (img, lab, box, c) in enumerate(
            zip(img_idx.tolist(), labels.tolist(), xywh.tolist(),
                crowd.tolist()))
    ]
    coco = COCO()
    coco.dataset = dict(
        images=[
            dict(id=i, width=r['width'], height=r['height'])
            for i, r in enumerate(results)
        ],
        categories=[dict(id=i, name=name) for i, name in enumerate(classes)],
        annotations=annotations)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_ap(coco_gt: COCO,
            preds: Sequence[Dict[str, np.ndarray]]) -> Tuple[float, float]:
    """AP@[.5:.95] and AP50 (%) of one model's predictions, one record
    array per image of ``coco_gt`` (:func:`coco_ground_truth`)."""
    if not coco_gt.getAnnIds():
        return float('nan'), float('nan')  # COCOeval gives -1
    boxes = np.concatenate([p['bboxes'] for p in preds]).astype(np.float64)
    if len(boxes) == 0:
        return 0.0, 0.0  # loadRes cannot take an empty result list
    img_idx = np.repeat(np.arange(len(preds), dtype=np.float64),
                        [len(p['scores']) for p in preds])
    # rows (image, x, y, w, h, score, class), as loadRes takes an array
    dets = np.concatenate([
        img_idx[:, None], boxes[:, :2], boxes[:, 2:] - boxes[:, :2],
        np.concatenate([p['scores'] for p in preds])[:, None],
        np.concatenate([p['labels'] for p in preds])[:, None]
    ], axis=1).astype(np.float64)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets)
        coco_eval = COCOeval(coco_gt, coco_dt, 'bbox')
        params = coco_eval.params
        params.imgIds = sorted(coco_gt.getImgIds())
        params.catIds = sorted(coco_gt.getCatIds())
        # AP and AP50 need only area 'all' at 100 boxes; the other three
        # area ranges would take 3/4 of the matching time
        params.areaRng, params.areaRngLbl = [[0, 1e10]], ['all']
        params.maxDets = [COCO_MAX_DETS]
        coco_eval.evaluate()
        coco_eval.accumulate()
    # (T thresholds, R recalls, K classes, A=1, M=1), as summarize()
    # reads it; -1 marks classes without GT
    precision = coco_eval.eval['precision'][..., 0, 0]
    return tuple(
        float(p[p > -1].mean()) * 100 if (p > -1).any() else math.nan
        for p in (precision, precision[:1]))
