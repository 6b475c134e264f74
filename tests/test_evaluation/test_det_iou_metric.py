import contextlib
import io
import math
import pickle

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

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



def pycocotools_ap(coco, rows):
    """AP and AP50 (%) of pycocotools itself for the detections ``rows``
    ``[image, x, y, w, h, score, label]`` on the ground truth ``coco``."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(np.array(rows)), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return 100 * ev.stats[0], 100 * ev.stats[1]

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
    return pycocotools_ap(coco, rows)


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


# ---------------------------------------------------------------------------------------------
# the batched process() against a per-sample reference written from the definitions

REF_MODELS = ('teacher', 'student0', 'ensemble')
REF_CLASSES = ('a', 'b', 'c')


def _random_samples(seed, num=60):
    """DetDataSamples with what the batched code must get right: scores on a 0.2 grid (many
    ties, within a model and across the models), float64 scores for one model, images without
    predictions, images without GT, ignored GT (``ignored_instances`` and ``ignore_flag``), GT
    from ``instances``, ``HorizontalBoxes``, repeated img_ids and > 100 boxes of one class."""
    g = torch.Generator().manual_seed(seed)

    def randint(high):
        return int(torch.randint(0, high, (1, ), generator=g))

    def boxes_near(centres, count, jitter):
        base = centres[torch.randint(0, len(centres), (count, ), generator=g)]
        return base + (torch.rand(count, 4, generator=g) - 0.5) * jitter

    samples = []
    for _ in range(num):
        s = DetDataSample(metainfo=dict(img_id=f'img{randint(num * 3 // 4)}',
                                        ori_shape=(200, 300)))
        corner = torch.rand(randint(4), 2, generator=g) * 150
        gt = torch.cat([corner, corner + 5 + torch.rand(len(corner), 2, generator=g) * 60], 1)
        source = randint(4)
        if source == 0:  # the dataset's annotations, 30 % of them ignored
            s.set_metainfo(dict(instances=[
                dict(bbox=box, bbox_label=randint(3), ignore_flag=int(randint(10) < 3))
                for box in gt.tolist()]))
            s.gt_instances = instances([])  # never read: `instances` wins
        else:
            s.gt_instances = InstanceData(
                bboxes=HorizontalBoxes(gt) if source == 2 else gt,
                labels=torch.randint(0, 3, (len(gt), ), generator=g))
            if source == 3:
                ignored = torch.rand(randint(3), 2, generator=g) * 150
                s.ignored_instances = InstanceData(
                    bboxes=torch.cat([ignored, ignored + 30], 1),
                    labels=torch.randint(0, 3, (len(ignored), ), generator=g))
        preds = {}
        for m, name in enumerate(REF_MODELS):
            count = 0 if randint(10) == 0 else randint(250)
            if len(gt) and count:
                boxes = boxes_near(gt, count, 40)
            else:
                corner = torch.rand(count, 2, generator=g) * 150
                boxes = torch.cat([corner, corner + 20], 1)
            scores = torch.randint(0, 6, (count, ), generator=g) / 5
            # class 0 three times as often: often more than 100 of its boxes
            labels = torch.tensor([0, 0, 0, 1, 2])[torch.randint(0, 5, (count, ), generator=g)]
            preds[name] = InstanceData(
                bboxes=boxes, scores=scores.double() if m == 1 else scores, labels=labels)
        s.model_preds = preds
        samples.append(s)
    return samples


def _first_occurrences(samples):
    unique = {}
    for s in samples:
        unique.setdefault(s.img_id, s)
    return list(unique.values())


def _reference_gt(s):
    """(boxes, labels, crowd) lists of one sample, from the rules of the docstring."""
    if 'instances' in s:
        return ([a['bbox'] for a in s.instances], [a['bbox_label'] for a in s.instances],
                [a['ignore_flag'] for a in s.instances])
    parts = [(s.gt_instances, 0)] + (
        [(s.ignored_instances, 1)] if 'ignored_instances' in s else [])
    boxes, labels, crowd = [], [], []
    for inst, flag in parts:
        b = inst.bboxes
        b = b.tensor if isinstance(b, HorizontalBoxes) else b
        boxes += b.tolist()
        labels += inst.labels.tolist()
        crowd += [flag] * len(b)
    return boxes, labels, crowd


def _iou32(a, b):
    """IoU of two xyxy boxes in float32, operation by operation as aligned_box_iou."""
    a, b = np.float32(a), np.float32(b)
    zero = np.float32(0)
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), zero) * \
        max(min(a[3], b[3]) - max(a[1], b[1]), zero)
    area_a = max(a[2] - a[0], zero) * max(a[3] - a[1], zero)
    area_b = max(b[2] - b[0], zero) * max(b[3] - b[1], zero)
    return inter / max(area_a + area_b - inter, np.float32(1e-6))


def _reference_kept(inst, per_class):
    """Indices of the boxes kept for an image, by score descending and, among equal scores,
    in the model's order; with ``per_class``, the 100 best of each class, else the best."""
    scores = inst.scores.tolist()
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable
    if not per_class:
        return order[:1]
    labels, taken, kept = inst.labels.tolist(), {}, []
    for i in order:
        taken[labels[i]] = taken.get(labels[i], 0) + 1
        if taken[labels[i]] <= 100:
            kept.append(i)
    return kept


def _reference_iou_metrics(samples, name, iou_thr=0.5):
    """mIoU and acc (%) of one model: top-1 box by score (first of equal scores), IoU with
    the best valid GT box (0 without a prediction), images without valid GT left out."""
    ious = []
    for s in _first_occurrences(samples):
        boxes, _, crowd = _reference_gt(s)
        valid = [b for b, c in zip(boxes, crowd) if not c]
        if not valid:
            continue
        inst = s.model_preds[name]
        top = _reference_kept(inst, per_class=False)
        ious.append(max(_iou32(inst.bboxes[top[0]].tolist(), g) for g in valid)
                    if top else np.float32(0))
    # the share of the images, then in %: the metric's order of the operations
    return (math.fsum(map(float, ious)) / len(ious) * 100,
            sum(i >= np.float32(iou_thr) for i in ious) / len(ious) * 100)


def _reference_coco_ap(samples, name):
    """AP@[.5:.95] and AP50 (%) from pycocotools' defaults on all raw boxes; ignored GT are
    crowd regions, and COCOeval itself caps each (image, class) at its 100 best boxes."""
    unique = _first_occurrences(samples)
    annotations, rows = [], []
    for img, s in enumerate(unique):
        for (x1, y1, x2, y2), lab, c in zip(*_reference_gt(s)):
            box = [float(np.float32(v)) for v in (x1, y1, x2, y2)]
            annotations.append(dict(id=len(annotations) + 1, image_id=img, category_id=lab,
                                    iscrowd=c, bbox=[box[0], box[1], box[2] - box[0],
                                                     box[3] - box[1]],
                                    area=(box[2] - box[0]) * (box[3] - box[1])))
        inst = s.model_preds[name]
        for (x1, y1, x2, y2), score, lab in zip(inst.bboxes.tolist(),
                                                inst.scores.float().tolist(),
                                                inst.labels.tolist()):
            rows.append([img, x1, y1, x2 - x1, y2 - y1, score, lab])
    coco = COCO()
    coco.dataset = dict(images=[dict(id=i, width=300, height=200) for i in range(len(unique))],
                        categories=[dict(id=c, name=n) for c, n in enumerate(REF_CLASSES)],
                        annotations=annotations)
    return pycocotools_ap(coco, rows)


@pytest.mark.parametrize('with_coco', [False, True])
@pytest.mark.parametrize('seed', [0, 1])
def test_batched_process_matches_per_sample_reference(seed, with_coco):
    samples = _random_samples(seed)
    unique = _first_occurrences(samples)
    # the data has what the test is about
    assert len(unique) < len(samples)
    assert any(len(s.model_preds[n].scores) == 0 for s in samples for n in REF_MODELS)
    assert any(not any(1 - c for c in _reference_gt(s)[2]) for s in unique)
    assert any(any(_reference_gt(s)[2]) for s in unique)
    assert any(int((s.model_preds[n].labels == c).sum()) > 100
               for s in samples for n in REF_MODELS for c in range(3))

    metric = DetIoUMetric(with_coco=with_coco)
    metric.dataset_meta = dict(classes=REF_CLASSES)
    for start in range(0, len(samples), 7):  # batches mix GT sources and sizes
        metric.process({}, [s.to_dict() for s in samples[start:start + 7]])
    # the boxes kept per image, in order, are the reference's
    for s, r in zip(samples, metric.results):
        assert list(r['preds']) == list(REF_MODELS)
        for name in REF_MODELS:
            inst, kept = s.model_preds[name], r['preds'][name]
            idx = _reference_kept(inst, per_class=with_coco)
            assert kept['bboxes'].tolist() == inst.bboxes[idx].reshape(-1, 4).tolist()
            assert kept['scores'].tolist() == inst.scores[idx].float().tolist()
            assert kept['labels'].tolist() == inst.labels[idx].tolist()

    metrics = metric.evaluate(len(samples))
    keys = ['mIoU', 'acc50'] + (['AP', 'AP50'] if with_coco else [])
    assert list(metrics) == [f'{n}/{k}' for n in REF_MODELS for k in keys]
    for name in REF_MODELS:
        miou, acc = _reference_iou_metrics(samples, name)
        assert metrics[f'{name}/mIoU'] == pytest.approx(miou, rel=1e-12, abs=0)
        assert metrics[f'{name}/acc50'] == acc  # a count over the same float32 IoUs
        if with_coco:
            ap, ap50 = _reference_coco_ap(samples, name)
            assert metrics[f'{name}/AP'] == pytest.approx(ap, rel=1e-12, abs=0)
            assert metrics[f'{name}/AP50'] == pytest.approx(ap50, rel=1e-12, abs=0)


def test_kept_results_are_small_numpy_records():
    # 8 images in one batch, the models in another order in one of them
    samples = [sample(i) for i in (1, 2, 3, 1, 2, 3, 1, 2)]
    samples[1].model_preds = dict(student0=samples[1].model_preds['student0'],
                                  teacher=samples[1].model_preds['teacher'])
    for with_coco, per_image in ((False, 1), (True, None)):
        metric = DetIoUMetric(with_coco=with_coco)
        metric.process({}, [s.to_dict() for s in samples])
        assert [list(r['preds']) for r in metric.results][:3] == [
            ['teacher', 'student0'], ['student0', 'teacher'], ['teacher', 'student0']]
        for s, r in zip(samples, metric.results):
            for key in ('gt_bboxes', 'gt_labels', 'gt_ignore'):
                assert isinstance(r[key], np.ndarray)
            for name, kept in r['preds'].items():
                assert isinstance(kept, np.ndarray)  # no tensor to pickle or walk
                expected = len(s.model_preds[name].scores) if per_image is None else per_image
                assert len(kept) == expected
        # one record array per model: well under a kB per image with 2 models
        assert len(pickle.dumps(metric.results[4:])) / 4 < 600


def test_box_count_mismatch_is_named():
    s = sample(1)
    # InstanceData checks the lengths; a dict does not
    s.model_preds['student0'] = dict(s.model_preds['student0'].to_dict(),
                                     scores=torch.tensor([0.5]))  # 2 boxes, 1 score
    with pytest.raises(ValueError, match=r"'student0' hold 2 boxes, 1 scores and 2 labels"):
        DetIoUMetric().process({}, [s])
