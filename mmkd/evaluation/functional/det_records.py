"""Per-image records of :class:`~mmkd.evaluation.DetIoUMetric`.

What the metric keeps of each image, in numpy arrays that cost less than
tensors to slice, to pickle across ranks and to walk in
``BaseMetric.evaluate``: each model's best predicted boxes
(:func:`best_boxes`) and the ground truth (:func:`ground_truth_arrays`), both
converted once per batch, each image's arrays being slices of the batch's.
"""
from itertools import accumulate
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .box_iou_metrics import pad_segments

# COCO's maxDets for AP: COCOeval matches at most this many boxes per image and
# class (it evaluates each (image, class) pair on its own), so more are never
# looked at
COCO_MAX_DETS = 100
# what the metric keeps per image and model: one record per box, in one numpy
# array instead of a dict of three tensors, a tenth of the pickled bytes and a
# quarter of the objects that mmengine's _to_cpu walks in evaluate()
PRED_DTYPE = np.dtype([('bboxes', np.float32, (4, )), ('scores', np.float32),
                       ('labels', np.int64)])


def best_boxes(segments: Sequence[Tuple[str, object]],
               per_class: Optional[int] = None) -> List[np.ndarray]:
    """The best boxes of S (model, image) pairs, by score descending.

    With ``order_s`` the stable descending argsort of the scores of pair
    s (equal scores keep the model's order), the kept boxes are
    ``order_s[0]`` when ``per_class`` is None, else the ``order_s[r]`` whose
    rank among the earlier boxes of their class is < ``per_class``. Both
    run once on the scores of all pairs padded to (S, P) with -inf:
    ``argmax`` returns the first of equal maxima, and the stable sort
    puts the padding after every real box; the class ranks run once on
    the flat (sum_s n_s, ) keys ``(s, class)``.

    Args:
        segments (Sequence[tuple[str, InstanceData | dict]]): The model name
            (for the error messages) and its predictions in one image,
            for each pair.
        per_class (int, optional): Boxes kept per pair and class, e.g.
            :data:`COCO_MAX_DETS` for COCO AP. Defaults to None: only the
            single best box of each pair.

    Returns:
        list[np.ndarray]: Per pair a record array (k, ) of
        :data:`PRED_DTYPE` (``bboxes`` (k, 4), ``scores`` (k, ),
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
    kept = np.empty(0, PRED_DTYPE)
    counts = [0] * len(lengths)
    if len(flat_scores):
        padded, valid = pad_segments(
            flat_scores if flat_scores.is_floating_point() else
            flat_scores.double(), lengths, float('-inf'))
        offsets = torch.tensor([0] + list(accumulate(lengths[:-1])),
                               device=padded.device)
        if per_class is not None:
            order = padded.argsort(dim=1, descending=True, stable=True)
            # the real boxes fill the first n_s sorted slots
            idx = (order + offsets[:, None])[valid]
            seg = torch.repeat_interleave(valid.sum(1))
            cls = flat_labels[idx].unique(return_inverse=True)[1]
            keep = rank_in_class(seg * (int(cls.max()) + 1) + cls) < \
                per_class
            idx = idx[keep]
            counts = torch.bincount(seg[keep], minlength=len(lengths))
        else:
            counts = valid[:, 0]
            idx = (padded.argmax(dim=1) + offsets)[counts]
        counts = counts.tolist()
        kept = np.empty(len(idx), PRED_DTYPE)
        kept['bboxes'] = _cat(boxes)[idx].float().cpu()
        kept['scores'] = flat_scores[idx].float().cpu()
        kept['labels'] = flat_labels[idx].long().cpu()
    ends = list(accumulate(counts))
    return [kept[a:b] for a, b in zip([0] + ends[:-1], ends)]


def ground_truth_arrays(samples: Sequence[Mapping],
                        rescale_gt: bool = False,
                        caller: str = 'ground_truth_arrays'
                        ) -> List[Dict[str, np.ndarray]]:
    """GT boxes, labels and ignore flags of each sample, in one go.

    A sample's GT is ``instances``, the dataset's annotations (a list of
    dicts with ``bbox`` xyxy, ``bbox_label``, ``ignore_flag``), in original
    pixels and never rescaled; else ``gt_instances`` and, flagged ignored,
    ``ignored_instances`` (``InstanceData`` or dicts).

    Args:
        samples (Sequence[Mapping]): The data samples, as dicts.
        rescale_gt (bool): Divide the ``gt_instances`` boxes by the
            sample's ``scale_factor`` (w, h). Defaults to False.
        caller (str): Name that starts the error messages. Defaults to
            ``'ground_truth_arrays'``.

    Returns:
        list[dict[str, np.ndarray]]: Per sample ``gt_bboxes`` (G, 4)
        float32, ``gt_labels`` (G, ) int64 and ``gt_ignore`` (G, ) bool.
    """
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
                f'{caller} needs `instances` or `gt_instances` in every data '
                f'sample, got keys {sorted(sample)}')
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
        if rescale_gt:
            scale = sample.get('scale_factor')
            if scale is None:
                raise ValueError('`rescale_gt=True` needs `scale_factor` '
                                 'in every data sample')
            scales.append(scale)
    boxes = _cat(boxes).float().cpu()
    if rescale_gt:
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


def rank_in_class(labels: Tensor) -> Tensor:
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
