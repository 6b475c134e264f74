import contextlib
import io
import math
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmengine.structures import BaseDataElement
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from mmkd.registry import METRICS
from ..functional import pad_boxes, top1_iou

# COCO's maxDets for AP: COCOeval matches at most this many boxes per image and
# class (it evaluates each (image, class) pair on its own), so more are never looked at
_COCO_MAX_DETS = 100


@METRICS.register_module()
class DetIoUMetric(BaseMetric):
    """Top-1 IoU, Acc@IoU and COCO AP of several detectors side by side.

    The metric of SPEC.md §5.4 for (mostly) single-object detection such as
    polyps. For image j with valid GT boxes G_j the IoU is
    ``IoU_j = max_{g in G_j} IoU(top-1 box of j, g)``, 0 without any
    prediction. For every model ``m`` the result holds:

    - ``m/mIoU``: mean of IoU_j in % (x100), over the images with at least
      one GT box (the IoU is undefined without one);
    - ``m/acc{100 * iou_thr}`` (``m/acc50`` by default): % of those images
      with IoU_j >= ``iou_thr``;
    - with ``with_coco``, ``m/AP`` (AP@[.5:.95]) and ``m/AP50`` in % from
      pycocotools on a COCO ground truth built in memory from the samples.
      A value of NaN means there is no GT box at all.

    Every ``data_sample`` (an mmdet ``DetDataSample`` or the dict mmengine's
    ``Evaluator`` makes of it) needs ``img_id``, ground truth and
    predictions in original-image pixels:

    - predictions: ``model_preds``, a dict model name -> ``InstanceData`` (or
      dict) with ``bboxes`` (n, 4), ``scores`` (n, ), ``labels`` (n, ), as
      mmkd's distillers give (``'teacher'``, ``'student0'``, ...,
      ``'ensemble'``); else ``pred_instances`` of a plain mmdet detector,
      named ``model_name``. mmdet rescales them to the original image.
    - ground truth: ``instances``, the dataset's annotations (a list of
      dicts with ``bbox`` xyxy, ``bbox_label``, ``ignore_flag``) when the
      pipeline packs them, which is what mmdet's ``CocoMetric`` reads
      without an ann file; else ``gt_instances`` (and ``ignored_instances``)
      from ``PackDetInputs``. mmdet's test pipelines run ``LoadAnnotations``
      after ``Resize``, so these boxes are already in original pixels; set
      ``rescale_gt=True`` only when annotations are loaded before
      ``Resize``, to divide them by ``scale_factor``.

    Ignored GT boxes (``ignore_flag``) count for neither IoU nor Acc and are
    COCO crowd regions. Images are de-duplicated by ``img_id``, keeping the
    first occurrence (the DDP sampler pads the last batch by repeating
    samples). Models are reported in the order they are first seen.

    Args:
        model_name (str): Name of the model whose ``pred_instances`` are
            evaluated when the samples carry no ``model_preds``.
            Defaults to ``'model'``.
        iou_thr (float): IoU threshold of the accuracy, in (0, 1].
            Defaults to 0.5.
        with_coco (bool): Also compute COCO AP and AP50 (keeps, per image and
            model, the 100 best boxes of each class, what COCO's
            ``maxDets=100`` looks at, instead of the single best box).
            Defaults to True.
        rescale_gt (bool): Divide ``gt_instances`` boxes by
            ``scale_factor``. Defaults to False.
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix added to every key. Defaults to None,
            since the keys already start with the model name.
    """
    default_prefix: Optional[str] = None

    def __init__(self,
                 model_name: str = 'model',
                 iou_thr: float = 0.5,
                 with_coco: bool = True,
                 rescale_gt: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0 < iou_thr <= 1:
            raise ValueError(f'`iou_thr` must be in (0, 1], got {iou_thr}')
        if not isinstance(model_name, str) or not model_name:
            raise ValueError('`model_name` must be a non-empty str, got '
                             f'{model_name!r}')
        self.model_name = model_name
        self.iou_thr = iou_thr
        self.with_coco = with_coco
        self.rescale_gt = rescale_gt
        # the IoU needs only the top-1 box; COCO AP looks at 100 per image and class
        self.keep_per_img = _COCO_MAX_DETS if with_coco else 1
        self.acc_key = f'acc{round(100 * iou_thr)}'

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep each sample's GT and each model's best boxes on the CPU.

        Args:
            data_batch (Any): The batch from the dataloader; unused.
            data_samples (Sequence[DetDataSample | dict]): The predicted
                samples, see the class docstring.
        """
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            if 'img_id' not in sample:
                raise ValueError(f'{type(self).__name__} needs `img_id` in '
                                 'every data sample (PackDetInputs meta_keys)')
            preds = sample.get('model_preds')
            if preds is None:
                if sample.get('pred_instances') is None:
                    raise ValueError(
                        f'{type(self).__name__} needs `model_preds` or '
                        '`pred_instances` in every data sample, got keys '
                        f'{sorted(sample)}')
                preds = {self.model_name: sample['pred_instances']}
            ori_shape = sample.get('ori_shape') or (0, 0)
            result = dict(
                img_id=sample['img_id'],
                height=int(ori_shape[0]),
                width=int(ori_shape[1]),
                preds={
                    name: self._top_predictions(name, inst)
                    for name, inst in preds.items()
                })
            result.update(self._ground_truth(sample))
            self.results.append(result)

    def _top_predictions(self, name: str, inst) -> Dict[str, Tensor]:
        """One model's best boxes of an image, by score descending: the
        ``keep_per_img`` best of each class with COCO AP, else the best one.

        Returns:
            dict[str, Tensor]: ``bboxes`` (k, 4), ``scores`` (k, ) float and
            ``labels`` (k, ) long, on the CPU.
        """
        fields = {}
        for key in ('bboxes', 'scores', 'labels'):
            value = inst.get(key) if inst is not None else None
            if value is None:
                raise ValueError(f'the predictions of model {name!r} lack '
                                 f'`{key}`')
            fields[key] = _tensor(value)
        # stable, so that equal scores keep the model's order
        order = fields['scores'].reshape(-1).argsort(descending=True, stable=True)
        if self.with_coco:
            order = order[_rank_in_class(fields['labels'].reshape(-1)[order]) <
                          self.keep_per_img]
        else:
            order = order[:1]
        return dict(
            bboxes=fields['bboxes'].reshape(-1, 4)[order].float().cpu(),
            scores=fields['scores'].reshape(-1)[order].float().cpu(),
            labels=fields['labels'].reshape(-1)[order].long().cpu())

    def _ground_truth(self, sample: Mapping) -> Dict[str, Tensor]:
        """GT boxes (G, 4), labels (G, ) and ignore flags (G, ) on the CPU."""
        if sample.get('instances') is not None:
            # the dataset's own annotations, in original pixels; a few
            # entries per image, so reading them one by one is cheap
            anns = sample['instances']
            return dict(
                gt_bboxes=torch.tensor([a['bbox'] for a in anns],
                                       dtype=torch.float).reshape(-1, 4),
                gt_labels=torch.tensor([a['bbox_label'] for a in anns],
                                       dtype=torch.long),
                gt_ignore=torch.tensor(
                    [bool(a.get('ignore_flag', 0)) for a in anns],
                    dtype=torch.bool))
        if sample.get('gt_instances') is None:
            raise ValueError(
                f'{type(self).__name__} needs `instances` or `gt_instances` '
                f'in every data sample, got keys {sorted(sample)}')
        parts = [(sample['gt_instances'], False)]
        if sample.get('ignored_instances') is not None:
            parts.append((sample['ignored_instances'], True))
        boxes, labels, ignore = [], [], []
        for inst, ignored in parts:
            b = _tensor(inst.get('bboxes', torch.zeros(0, 4)))
            b = b.reshape(-1, 4).float().cpu()
            boxes.append(b)
            labels.append(
                _tensor(inst.get('labels', torch.zeros(0))).reshape(
                    -1).long().cpu())
            ignore.append(torch.full((len(b), ), ignored))
        boxes = torch.cat(boxes)
        if self.rescale_gt:
            scale = sample.get('scale_factor')
            if scale is None:
                raise ValueError('`rescale_gt=True` needs `scale_factor` in '
                                 'every data sample')
            boxes = boxes / boxes.new_tensor(scale).repeat(2)
        return dict(gt_bboxes=boxes, gt_labels=torch.cat(labels),
                    gt_ignore=torch.cat(ignore))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute every metric of every model on the de-duplicated images.

        Args:
            results (list[dict]): The per-image dicts stored by
                :meth:`process`, gathered from all ranks.

        Returns:
            dict[str, float]: Flat dict ``{'{model}/{metric}': value}``.
        """
        if not results:
            raise ValueError(f'{type(self).__name__} got no results: the '
                             'val/test dataloader yielded no sample')
        # first occurrence of each img_id, in the order first seen
        unique = {}
        for r in results:
            unique.setdefault(r['img_id'], r)
        results = list(unique.values())
        names = list(dict.fromkeys(n for r in results for n in r['preds']))
        for r in results:
            missing = set(names) - set(r['preds'])
            if missing:
                raise ValueError(
                    f'model name(s) {sorted(missing)} are missing in the '
                    f'predictions of image {r["img_id"]!r} but present in '
                    'others; every sample must carry the same models')

        gt_boxes, gt_valid = pad_boxes([r['gt_bboxes'] for r in results])
        gt_ignore, _ = pad_boxes([r['gt_ignore'] for r in results])
        gt_valid &= ~gt_ignore
        has_gt = gt_valid.any(dim=1)
        logger = MMLogger.get_current_instance()
        logger.info(
            f'{type(self).__name__}: {len(results)} images, '
            f'{int((gt_valid.sum(1) > 1).sum())} with more than one GT box, '
            f'{int((~has_gt).sum())} without any (left out of mIoU/acc)')
        coco_gt = self._coco_gt(results) if self.with_coco else None

        metrics = {}
        for name in names:
            # the stored boxes are sorted by score: the top-1 is the first
            top = [r['preds'][name] for r in results]
            boxes, valid = pad_boxes([p['bboxes'][:1] for p in top])
            scores, _ = pad_boxes([p['scores'][:1] for p in top])
            ious = top1_iou(boxes, scores, valid, gt_boxes, gt_valid)[has_gt]
            if len(ious):
                # float64 means, so that e.g. 59 % does not read 58.999997
                miou = float(ious.double().mean()) * 100
                acc = float((ious >= self.iou_thr).double().mean()) * 100
            else:
                miou = acc = float('nan')
            metrics[f'{name}/mIoU'] = miou
            metrics[f'{name}/{self.acc_key}'] = acc
            if coco_gt is not None:
                ap, ap50 = self._coco_ap(coco_gt, top)
                metrics[f'{name}/AP'] = ap
                metrics[f'{name}/AP50'] = ap50
        return metrics

    def _classes(self) -> Sequence[str]:
        """COCO category names: the dataset's classes, else ('polyp', )."""
        meta = self.dataset_meta or {}
        return tuple(meta.get('classes') or ('polyp', ))

    def _coco_gt(self, results: List[dict]) -> COCO:
        """COCO ground truth of all images, image ids = result positions.

        Positions rather than ``img_id`` as image ids, since pycocotools
        needs int ids and the dataset's may be strings.
        """
        classes = self._classes()
        boxes = torch.cat([r['gt_bboxes'] for r in results]).double()
        labels = torch.cat([r['gt_labels'] for r in results])
        crowd = torch.cat([r['gt_ignore'] for r in results]).long()
        if len(labels) and not 0 <= int(labels.min()) <= int(
                labels.max()) < len(classes):
            raise ValueError(
                f'GT labels span [{int(labels.min())}, {int(labels.max())}] '
                f'but `dataset_meta["classes"]` names {len(classes)} '
                'class(es)')
        img_idx = torch.repeat_interleave(
            torch.tensor([len(r['gt_labels']) for r in results]))
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)
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
            categories=[
                dict(id=i, name=name) for i, name in enumerate(classes)
            ],
            annotations=annotations)
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def _coco_ap(self, coco_gt: COCO,
                 preds: List[Dict[str, Tensor]]) -> tuple:
        """AP@[.5:.95] and AP50 (%) of one model's predictions."""
        if not coco_gt.getAnnIds():
            return float('nan'), float('nan')  # COCOeval gives -1
        boxes = torch.cat([p['bboxes'] for p in preds]).double()
        if len(boxes) == 0:
            return 0.0, 0.0  # loadRes cannot take an empty result list
        img_idx = torch.repeat_interleave(
            torch.tensor([len(p['scores']) for p in preds])).double()
        dets = torch.cat([
            img_idx[:, None], boxes[:, :2], boxes[:, 2:] - boxes[:, :2],
            torch.cat([p['scores'] for p in preds]).double()[:, None],
            torch.cat([p['labels'] for p in preds]).double()[:, None]
        ], dim=1).numpy()
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(dets)
            coco_eval = COCOeval(coco_gt, coco_dt, 'bbox')
            params = coco_eval.params
            params.imgIds = sorted(coco_gt.getImgIds())
            params.catIds = sorted(coco_gt.getCatIds())
            # AP and AP50 need only area 'all' at 100 boxes; the other three
            # area ranges would take 3/4 of the matching time
            params.areaRng, params.areaRngLbl = [[0, 1e10]], ['all']
            params.maxDets = [_COCO_MAX_DETS]
            coco_eval.evaluate()
            coco_eval.accumulate()
        # (T thresholds, R recalls, K classes, A=1, M=1), as summarize()
        # reads it; -1 marks classes without GT
        precision = coco_eval.eval['precision'][..., 0, 0]
        return tuple(
            float(p[p > -1].mean()) * 100 if (p > -1).any() else math.nan
            for p in (precision, precision[:1]))


def _rank_in_class(labels: Tensor) -> Tensor:
    """0-based rank of each box among the boxes of its class, in the given order.

    Args:
        labels (Tensor): Class of each box (n, ), boxes sorted by score.

    Returns:
        Tensor: (n, ) long; entry i counts the boxes before i with its label.
    """
    if labels.numel() == 0:
        return labels.new_zeros(0, dtype=torch.long)
    by_class = labels.argsort(stable=True)  # score order kept inside a class
    sorted_labels = labels[by_class]
    start = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    ranks = torch.empty_like(by_class)
    ranks[by_class] = torch.arange(labels.numel(), device=labels.device) - start
    return ranks


def _tensor(value) -> Tensor:
    """A detached tensor from a tensor, mmdet ``BaseBoxes`` or array."""
    value = value.tensor if hasattr(value, 'tensor') else value
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    return torch.as_tensor(value).detach()
