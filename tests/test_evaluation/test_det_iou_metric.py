import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from mmkd.evaluation.metrics.det_iou_metric import DetIoUMetric
from mmkd.registry import METRICS

# three 100x100 images; image 2 has two polyps
GT = {1: [[10, 10, 50, 50]], 2: [[20, 20, 60, 60], [0, 0, 10, 10]], 3: [[30, 30, 70, 70]]}
# a perfect detector: exactly the GT boxes
TEACHER = {i: (boxes, [0.9] * len(boxes)) for i, boxes in GT.items()}
# a bad one: (boxes, scores), the top-1 first
STUDENT = {
    # top-1 vs [10, 10, 50, 50]: 40 * 20 / 1600 = 0.5; the 0.3 box is perfect
    1: ([[10, 10, 50, 30], [10, 10, 50, 50]], [0.8, 0.3]),
    # vs [0, 0, 10, 10]: 8 * 9 / 100 = 0.72 (0 with the other polyp)
    2: ([[0, 0, 8, 9]], [0.6]),
    # touches [30, 30, 70, 70] at a corner: 0
    3: ([[70, 70, 90, 90]], [0.9]),
}
# student0 COCO AP by hand: 4 GT boxes; detections by score: 0.9 img3, 0.8
# img1 (IoU 0.5), 0.6 img2 (IoU 0.72), 0.3 img1 (IoU 1 with the polyp the
# 0.8 box takes at IoU thr 0.5); 101 recall points r, precision made monotone:
# t = 0.5: FP, TP, TP, FP -> precision 2/3 up to r = 0.5: 51 * 2/3 / 101
# t = .55..0.7 (4 thr): FP, FP, TP, TP -> 1/2 up to r = 0.5: 51 * 0.5 / 101
# t = .75..0.95 (5 thr): FP, FP, FP, TP -> 1/4 up to r = 0.25: 26 * 0.25 / 101
STUDENT_AP50 = 100 * 34 / 101
STUDENT_AP = 100 * (34 + 4 * 25.5 + 5 * 6.5) / 1010
EXPECTED = {
    'teacher/mIoU': 100.0,
    'teacher/acc50': 100.0,
    'teacher/AP': 100.0,
    'teacher/AP50': 100.0,
    'student0/mIoU': 100 * (0.5 + 0.72 + 0.0) / 3,
    'student0/acc50': 100 * 2 / 3,  # 0.5 counts: IoU >= iou_thr
    'student0/AP': STUDENT_AP,
    'student0/AP50': STUDENT_AP50,
}


def instances(boxes, scores=None):
    boxes = torch.tensor(boxes, dtype=torch.float).reshape(-1, 4)
    inst = InstanceData(bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long))
    if scores is not None:
        inst.scores = torch.tensor(scores, dtype=torch.float)
    return inst


def sample(img_id, models=('teacher', 'student0'), plain=False):
    s = DetDataSample(metainfo=dict(img_id=img_id, ori_shape=(100, 100),
                                    scale_factor=(1.28, 1.28)))
    # the test pipeline loads annotations after Resize: original pixels
    s.gt_instances = instances(GT[img_id])
    tables = dict(teacher=TEACHER, student0=STUDENT)
    preds = {name: instances(*tables[name][img_id]) for name in models}
    if plain:
        s.pred_instances = preds['student0']
    else:
        s.model_preds = preds
        s.pred_instances = preds[models[-1]]  # ignored when model_preds exist
    return s


def evaluate(samples, batch_size=2, **cfg):
    evaluator = Evaluator(dict(type='DetIoUMetric', **cfg))
    evaluator.dataset_meta = dict(classes=('polyp', ))
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start:start + batch_size])
    return evaluator.evaluate(len(samples))


def assert_metrics(metrics, expected):
    assert list(metrics) == list(expected)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-3), key


class TestDetIoUMetric:

    def test_two_models_keys_and_values(self):
        assert_metrics(evaluate([sample(i) for i in (1, 2, 3)]), EXPECTED)

    def test_duplicates_are_counted_once(self):
        # DDP pads the last batch by repeating samples
        samples = [sample(i) for i in (1, 2, 3, 1, 2)]
        assert_metrics(evaluate(samples), EXPECTED)

    def test_plain_detector_named_by_model_name(self):
        metrics = evaluate([sample(i, plain=True) for i in (1, 2, 3)], model_name='gfl',
                           with_coco=False, prefix='val')
        assert_metrics(metrics, {'val/gfl/mIoU': EXPECTED['student0/mIoU'],
                                 'val/gfl/acc50': EXPECTED['student0/acc50']})

    def test_iou_thr_names_the_accuracy(self):
        metrics = evaluate([sample(i) for i in (1, 2, 3)], iou_thr=0.7, with_coco=False)
        # 0.5 < 0.7 <= 0.72
        assert metrics['student0/acc70'] == pytest.approx(100 / 3)
        assert metrics['teacher/acc70'] == 100.0

    def test_ground_truth_sources(self):
        samples = []
        for i in (1, 2, 3):
            s = sample(i)
            if i == 1:  # the dataset's annotations win over gt_instances
                s.set_metainfo(dict(instances=[
                    dict(bbox=b, bbox_label=0, ignore_flag=0) for b in GT[i]]))
                s.gt_instances = instances([[0, 0, 1, 1]])
            else:  # resized boxes (LoadAnnotations before Resize), as HorizontalBoxes
                s.gt_instances.bboxes = HorizontalBoxes(s.gt_instances.bboxes * 1.28)
            samples.append(s)
        assert_metrics(evaluate(samples, rescale_gt=True), EXPECTED)

    def test_ignored_gt_and_images_without_gt(self):
        samples = [sample(i) for i in (1, 2, 3)]
        # image 3's polyp becomes ignored: the image leaves mIoU / acc
        samples[2].ignored_instances = samples[2].gt_instances
        samples[2].gt_instances = instances([])
        metrics = evaluate(samples, with_coco=False)
        assert metrics['student0/mIoU'] == pytest.approx(100 * (0.5 + 0.72) / 2)
        assert metrics['student0/acc50'] == pytest.approx(100.0)

    def test_direct_data_samples_and_registry(self):
        metric = METRICS.build(dict(type='DetIoUMetric'))
        assert isinstance(metric, DetIoUMetric)
        metric.dataset_meta = dict(classes=('polyp', ))
        metric.process({}, [sample(i) for i in (1, 2, 3)])  # DetDataSamples, not dicts
        assert_metrics(metric.evaluate(3), EXPECTED)

    def test_keeps_the_best_boxes_on_cpu(self):
        metric = DetIoUMetric(with_coco=False)
        s = sample(1)
        s.model_preds['student0'] = instances([[0, 0, 1, 1]] * 3, [0.1, 0.7, 0.2])
        metric.process({}, [s.to_dict()])
        kept = metric.results[0]['preds']['student0']
        assert kept['scores'].tolist() == pytest.approx([0.7]) and kept['bboxes'].shape == (1, 4)
        assert DetIoUMetric().keep_per_img == 100

    def test_errors_name_the_problem(self):
        with pytest.raises(ValueError, match='iou_thr'):
            DetIoUMetric(iou_thr=0)
        s = sample(1)
        del s.model_preds
        del s.pred_instances
        with pytest.raises(ValueError, match='model_preds'):
            DetIoUMetric().process({}, [s])
        with pytest.raises(ValueError, match=r"\['student0'\].*image 2"):
            evaluate([sample(1), sample(2, models=('teacher', ))], with_coco=False)
        s = sample(1)
        s.gt_instances.labels += 1
        with pytest.raises(ValueError, match='classes'):
            evaluate([s])

    def test_no_detection_at_all(self):
        samples = [sample(i, models=('teacher', )) for i in (1, 2, 3)]
        for s in samples:
            s.model_preds = {'teacher': instances([], [])}
        assert_metrics(evaluate(samples), {'teacher/mIoU': 0.0, 'teacher/acc50': 0.0,
                                           'teacher/AP': 0.0, 'teacher/AP50': 0.0})


def _pycocotools_ap(gt, dets, classes):
    """AP@[.5:.95] and AP50 (%) from pycocotools' defaults on the raw boxes."""
    import contextlib
    import io

    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    coco = COCO()
    coco.dataset = dict(
        images=[dict(id=i, width=640, height=640) for i in range(len(gt))],
        categories=[dict(id=c, name=str(c)) for c in range(classes)],
        annotations=[dict(id=k + 1, image_id=i, category_id=lab, iscrowd=0,
                          bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1))
                     for k, (i, lab, (x1, y1, x2, y2)) in enumerate(
                         (i, lab, box) for i, (boxes, labels) in enumerate(gt)
                         for box, lab in zip(boxes.tolist(), labels.tolist()))])
    rows = [[i, x1, y1, x2 - x1, y2 - y1, s, lab]
            for i, (boxes, scores, labels) in enumerate(dets)
            for (x1, y1, x2, y2), s, lab in zip(boxes.tolist(), scores.tolist(),
                                                labels.tolist())]
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(np.array(rows)), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return 100 * ev.stats[0], 100 * ev.stats[1]


def test_coco_ap_keeps_100_boxes_per_image_and_class():
    # 2 images x 3 classes, 3 GT boxes per class and image; per image 150 boxes of class 2
    # outscore 40 of class 0 and 40 of class 1. COCO's maxDets=100 caps each (image, class):
    # classes 0 and 1 keep all their boxes. Keeping the 100 best per image over all classes
    # would drop classes 0 and 1 entirely (their AP 0 instead of ~1).
    g = torch.Generator().manual_seed(0)
    gt, dets, samples = [], [], []
    for img in range(2):
        corners = torch.rand(9, 2, generator=g) * 500
        gt_boxes = torch.cat([corners, corners + 40 + torch.rand(9, 2, generator=g) * 80], 1)
        gt_labels = torch.arange(3).repeat_interleave(3)
        boxes, scores, labels = [], [], []
        for cls, count, low, high in ((2, 150, 0.5, 1.0), (0, 40, 0.1, 0.4), (1, 40, 0.1, 0.4)):
            hit = gt_boxes[gt_labels == cls]
            jitter = (torch.rand(count, 4, generator=g) - 0.5) * 30
            boxes.append(hit[torch.arange(count) % 3] + jitter)
            scores.append(low + (high - low) * torch.rand(count, generator=g))
            labels.append(torch.full((count, ), cls))
        boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        gt.append((gt_boxes, gt_labels))
        dets.append((boxes, scores, labels))
        s = DetDataSample(metainfo=dict(img_id=f'img{img}', ori_shape=(640, 640)))
        s.gt_instances = InstanceData(bboxes=gt_boxes, labels=gt_labels)
        s.model_preds = dict(model=InstanceData(bboxes=boxes, scores=scores, labels=labels))
        samples.append(s)
    ap, ap50 = _pycocotools_ap(gt, dets, 3)
    evaluator = Evaluator(dict(type='DetIoUMetric'))
    evaluator.dataset_meta = dict(classes=('a', 'b', 'c'))
    evaluator.process(samples)
    metrics = evaluator.evaluate(2)
    assert metrics['model/AP'] == pytest.approx(ap, abs=1e-9)
    assert metrics['model/AP50'] == pytest.approx(ap50, abs=1e-9)
    assert ap50 > 60  # classes 0 and 1 count: without them AP50 would be at most 33.3
