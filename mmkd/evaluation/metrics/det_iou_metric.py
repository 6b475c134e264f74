import contextlib
import io
import math
from itertools import accumulate
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
from ..functional import pad_segments, top1_iou

# COCO's maxDets for AP: COCOeval matches at most this many boxes per image and
# class (it evaluates each (image, class) pair on its own), so more are never looked at
_COCO_MAX_DETS = 100
# what process() keeps per image and model: one record per box, in one numpy
# array instead of a dict of three tensors, a tenth of the pickled bytes and a
# quarter of the objects that mmengine's _to_cpu walks in evaluate()
_PRED_DTYPE = np.dtype([('bboxes', np.float32, (4, )), ('scores', np.float32),
                        ('labels', np.int64)])


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
        """Keep each image's GT and each model's best boxes on the CPU.

        The loop over the samples only reads their fields; the selection of
        the best boxes (:meth:`_best_boxes`) and the GT conversion
        (:meth:`_ground_truth`) run once per batch, and each image's arrays
        are slices of the batch's. Appends one dict per sample: ``img_id``,
        ``height``, ``width``, ``preds`` (model name -> record array (k, )
        of :data:`_PRED_DTYPE`, whose fields ``bboxes`` (k, 4), ``scores``
        (k, ) and ``labels`` (k, ) read as a dict's), ``gt_bboxes`` (G, 4),
        ``gt_labels`` (G, ) and ``gt_ignore`` (G, ). numpy arrays cost less
        than tensors to slice, to pickle across ranks and to walk in
        ``BaseMetric.evaluate`` (about 0.4 kB per image with 4 models and
        ``with_coco=False``, a tenth of per-field tensors).

        Args:
            data_batch (Any): The batch from the dataloader; unused.
            data_samples (Sequence[DetDataSample | dict]): The predicted
                samples, see the class docstring.
        """
        samples, preds = [], []
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            if 'img_id' not in sample:
                raise ValueError(f'{type(self).__name__} needs `img_id` in '
                                 'every data sample (PackDetInputs meta_keys)')
            pred = sample.get('model_preds')
            if pred is None:
                if sample.get('pred_instances') is None:
                    raise ValueError(
                        f'{type(self).__name__} needs `model_preds` or '
                        '`pred_instances` in every data sample, got keys '
                        f'{sorted(sample)}')
                pred = {self.model_name: sample['pred_instances']}
            samples.append(sample)
            preds.append(pred)
        if not samples:
            return
        # every (image, model) pair of the batch is one segment of the flat
        # tensors, so that the selection runs once for all models
        pairs = [(j, name, inst) for j, pred in enumerate(preds)
                 for name, inst in pred.items()]
        kept = self._best_boxes([(name, inst) for _, name, inst in pairs])
        image_preds = [{} for _ in samples]
        for (j, name, _), rec in zip(pairs, kept):
            image_preds[j][name] = rec
        for sample, pred, gt in zip(samples, image_preds,
                                    self._ground_truth(samples)):
            ori_shape = sample.get('ori_shape') or (0, 0)
            self.results.append(
                dict(img_id=sample['img_id'],
                     height=int(ori_shape[0]),
                     width=int(ori_shape[1]),
                     preds=pred,
                     **gt))

    def _best_boxes(self, segments: List[tuple]) -> List[np.ndarray]:
        """The best boxes of S (model, image) pairs, by score descending.

        With ``order_s`` the stable descending argsort of the scores of pair
        s (equal scores keep the model's order), the kept boxes are
        ``order_s[0]`` without COCO AP, else the ``order_s[r]`` whose rank
        among the earlier boxes of their class is < ``keep_per_img``. Both
        run once on the scores of all pairs padded to (S, P) with -inf:
        ``argmax`` returns the first of equal maxima, and the stable sort
        puts the padding after every real box; the class ranks run once on
        the flat (sum_s n_s, ) keys ``(s, class)``.

        Args:
            segments (list[tuple[str, InstanceData | dict]]): The model name
                (for the error messages) and its predictions in one image,
                for each pair.

        Returns:
            list[np.ndarray]: Per pair a record array (k, ) of
            :data:`_PRED_DTYPE` (``bboxes`` (k, 4), ``scores`` (k, ),
            ``labels`` (k, )), by score descending; k = 0 without any
            prediction.
        """
        boxes, scores, labels, lengths = [], [], [], []
        for name, inst in segments:
            boxes.append(_field(name, inst, 'bboxes', 2))
            scores.append(_field(name, inst, 'scores', 1))
            labels.append(_field(name, inst, 'labels', 1))
            lengths.append(scores[-1].shape[0])
            if boxes[-1].shape[0] != lengths[-1] or \
                    labels[-1].shape[0] != lengths[-1]:
                # in the flat tensors, the boxes of one image would shift
                # those of all the next ones
                raise ValueError(
                    f'the predictions of model {name!r} hold '
                    f'{boxes[-1].shape[0]} boxes, {lengths[-1]} scores and '
                    f'{labels[-1].shape[0]} labels in one image; they must '
                    'be as many')
        flat_scores, flat_labels = _cat(scores), _cat(labels)
        kept = np.empty(0, _PRED_DTYPE)
        counts = [0] * len(lengths)
        if len(flat_scores):
            padded, valid = pad_segments(
                flat_scores if flat_scores.is_floating_point() else
                flat_scores.double(), lengths, float('-inf'))
            offsets = torch.tensor([0] + list(accumulate(lengths[:-1])),
                                   device=padded.device)
            if self.with_coco:
                order = padded.argsort(dim=1, descending=True, stable=True)
                # the real boxes fill the first n_s sorted slots
                idx = (order + offsets[:, None])[valid]
                seg = torch.repeat_interleave(valid.sum(1))
                cls = flat_labels[idx].unique(return_inverse=True)[1]
                keep = _rank_in_class(seg * (int(cls.max()) + 1) + cls) < \
                    self.keep_per_img
                idx = idx[keep]
                counts = torch.bincount(seg[keep], minlength=len(lengths))
            else:
                counts = valid[:, 0]
                idx = (padded.argmax(dim=1) + offsets)[counts]
            counts = counts.tolist()
            kept = np.empty(len(idx), _PRED_DTYPE)
            kept['bboxes'] = _cat(boxes)[idx].float().cpu()
            kept['scores'] = flat_scores[idx].float().cpu()
            kept['labels'] = flat_labels[idx].long().cpu()
        ends = list(accumulate(counts))
        return [kept[a:b] for a, b in zip([0] + ends[:-1], ends)]

    def _ground_truth(self,
                      samples: List[Mapping]) -> List[Dict[str, np.ndarray]]:
        """GT boxes (G, 4) float32, labels (G, ) int64 and ignore flags (G, )
        of each sample, converted in one go for the batch."""
        boxes, labels, ignore, scales = [], [], [], []
        num_boxes, num_labels = [], []
        for sample in samples:
            if sample.get('instances') is not None:
                # the dataset's own annotations, in original pixels; a few
                # entries per image, so reading them one by one is cheap
                anns = sample['instances']
                boxes.append(torch.tensor([a['bbox'] for a in anns],
                                          dtype=torch.float).reshape(-1, 4))
                labels.append(torch.tensor([a['bbox_label'] for a in anns],
                                           dtype=torch.long))
                ignore.extend(bool(a.get('ignore_flag', 0)) for a in anns)
                num_boxes.append(len(anns))
                num_labels.append(len(anns))
                scales.append((1., 1.))  # never rescaled
                continue
            if sample.get('gt_instances') is None:
                raise ValueError(
                    f'{type(self).__name__} needs `instances` or '
                    '`gt_instances` in every data sample, got keys '
                    f'{sorted(sample)}')
            parts = [(sample['gt_instances'], False)]
            if sample.get('ignored_instances') is not None:
                parts.append((sample['ignored_instances'], True))
            img_boxes = img_labels = 0
            for inst, ignored in parts:
                b = _gt_field(inst, 'bboxes', 2)
                lab = _gt_field(inst, 'labels', 1)
                boxes.append(b)
                labels.append(lab)
                ignore.extend([ignored] * b.shape[0])
                img_boxes += b.shape[0]
                img_labels += lab.shape[0]
            num_boxes.append(img_boxes)
            num_labels.append(img_labels)
            if self.rescale_gt:
                scale = sample.get('scale_factor')
                if scale is None:
                    raise ValueError('`rescale_gt=True` needs `scale_factor` '
                                     'in every data sample')
                scales.append(scale)
        boxes = _cat(boxes).float().cpu()
        if self.rescale_gt:
            # (w, h) -> (w, h, w, h) per image, then per box
            scale = torch.as_tensor(np.asarray(scales, dtype=np.float32))
            boxes = boxes / torch.repeat_interleave(
                scale.reshape(len(samples), 2).repeat(1, 2),
                torch.as_tensor(num_boxes), dim=0)
        boxes_np = boxes.numpy()
        labels_np = _cat(labels).long().cpu().numpy()
        ignore_np = np.array(ignore, dtype=bool)
        box_ends = list(accumulate(num_boxes))
        label_ends = list(accumulate(num_labels))
        return [
            dict(gt_bboxes=boxes_np[a:b], gt_labels=labels_np[c:d],
                 gt_ignore=ignore_np[a:b])
            for a, b, c, d in zip([0] + box_ends[:-1], box_ends,
                                  [0] + label_ends[:-1], label_ends)
        ]

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
        all_names = set(names)
        for r in results:
            if r['preds'].keys() != all_names:
                raise ValueError(
                    f'model name(s) {sorted(all_names - set(r["preds"]))} are '
                    f'missing in the predictions of image {r["img_id"]!r} but '
                    'present in others; every sample must carry the same '
                    'models')

        gt_boxes, gt_valid = _pad_images([r['gt_bboxes'] for r in results])
        gt_ignore, _ = _pad_images([r['gt_ignore'] for r in results])
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
            boxes, valid = _pad_images([p['bboxes'][:1] for p in top])
            scores, _ = _pad_images([p['scores'][:1] for p in top])
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
            categories=[
                dict(id=i, name=name) for i, name in enumerate(classes)
            ],
            annotations=annotations)
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def _coco_ap(self, coco_gt: COCO,
                 preds: List[Dict[str, np.ndarray]]) -> tuple:
        """AP@[.5:.95] and AP50 (%) of one model's predictions."""
        if not coco_gt.getAnnIds():
            return float('nan'), float('nan')  # COCOeval gives -1
        boxes = np.concatenate([p['bboxes'] for p in preds]).astype(
            np.float64)
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


def _cat(tensors: List[Tensor]) -> Tensor:
    """Detached ``torch.cat`` on the tensors' device, in one copy, or on the
    CPU when they are on several (e.g. GT on the GPU next to ``instances``
    built on the CPU)."""
    if len({t.device for t in tensors}) > 1:
        tensors = [t.cpu() for t in tensors]
    return torch.cat(tensors).detach()


def _pad_images(arrays: List[np.ndarray]) -> tuple:
    """:func:`pad_segments` of per-image numpy arrays (n_i, *): padded
    (N, max n_i, *) tensor and valid mask (N, max n_i)."""
    return pad_segments(torch.from_numpy(np.concatenate(arrays)),
                        [len(a) for a in arrays])


def _field(name: str, inst, key: str, dim: int) -> Tensor:
    """Field ``key`` of one model's predictions, as a tensor of ``dim`` dims:
    (n, 4) boxes or (n, ) scores and labels."""
    value = inst.get(key) if inst is not None else None
    if value is None:
        raise ValueError(f'the predictions of model {name!r} lack `{key}`')
    if isinstance(value, Tensor) and value.dim() == dim and (
            dim == 1 or value.shape[1] == 4):
        return value  # the common case; detached once for the batch by _cat
    return _rows(_tensor(value), dim)


def _gt_field(inst, key: str, dim: int) -> Tensor:
    """GT ``bboxes`` (G, 4) or ``labels`` (G, ) of an ``InstanceData`` (or
    dict), empty where it lacks them."""
    value = inst.get(key)
    if value is None:
        return torch.zeros((0, 4) if dim == 2 else (0, ))
    return _rows(_tensor(value), dim)


def _rows(value: Tensor, dim: int) -> Tensor:
    """``value`` as (n, 4) boxes (``dim=2``) or (n, ) values (``dim=1``),
    reshaped only when it is not already."""
    shape = (-1, 4) if dim == 2 else (-1, )
    if value.dim() == dim and (dim == 1 or value.shape[1] == 4):
        return value
    return value.reshape(shape)


def _tensor(value) -> Tensor:
    """A detached tensor from a tensor, mmdet ``BaseBoxes`` or array."""
    if isinstance(value, Tensor):
        return value.detach()
    value = value.tensor if hasattr(value, 'tensor') else value
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    return torch.as_tensor(value).detach()
