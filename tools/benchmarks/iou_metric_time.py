"""DetIoUMetric on 10,000 images x 4 models (< 2 s end to end) and on 1,000 (< 1 s)."""
import statistics

import torch
from mmengine.structures import InstanceData

from mmdet.structures import DetDataSample
from mmkd.registry import METRICS
from .common import side_by_side

NAME = 'iou_metric_time'


def _iou_metric_seconds(num_images, reps):
    """Seconds of DetIoUMetric (mIoU + Acc@0.5, COCO AP off) on ``num_images`` images with
    4 models x 100 boxes each, process (batches of 8, the dicts mmengine's Evaluator hands
    a metric) + evaluate."""
    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(num_images):
        s = DetDataSample(metainfo=dict(img_id=f'img{i}', ori_shape=(512, 512)))
        s.gt_instances = InstanceData(bboxes=torch.rand(1, 4, generator=g).sort(1).values * 512,
                                      labels=torch.zeros(1, dtype=torch.long))
        preds = {}
        for name in ('teacher', 'student0', 'student1', 'ensemble'):
            boxes = torch.rand(100, 4, generator=g).sort(1).values * 512
            preds[name] = InstanceData(bboxes=boxes, scores=torch.rand(100, generator=g),
                                       labels=torch.zeros(100, dtype=torch.long))
        s.model_preds = preds
        s.pred_instances = preds['ensemble']
        samples.append(s.to_dict())

    def evaluate():
        metric = METRICS.build(dict(type='DetIoUMetric', with_coco=False))
        metric.dataset_meta = dict(classes=('polyp', ))
        for start in range(0, num_images, 8):
            metric.process({}, samples[start:start + 8])
        metric.evaluate(num_images)

    return side_by_side({'metric': evaluate}, reps)['metric']


def run(args):
    rows = []
    for n, target in ((10000, 2.0), (1000, 1.0)):
        times = _iou_metric_seconds(n, max(5, args.reps))
        median = statistics.median(times)
        rows.append(dict(name=f'IoU metric time, {n:,} images x 4 models', unit='s',
                         value=median, spread=[min(times), max(times)], target=target,
                         met=median < target,
                         detail='process + evaluate, 100 boxes per model, no COCO AP'))
    return rows
