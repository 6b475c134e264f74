"""The "max-ensemble" of several detectors' boxes (SPEC.md §5.3).

An elementwise max is only defined for probabilities; for detections the
ensemble either pools every model's boxes and keeps the best ones by NMS (the
default, what mmdet's ``DetTTAModel`` does for TTA), or fuses overlapping
boxes with Weighted Boxes Fusion (Solovyev et al., ``ensemble_boxes``).
All functions take and return mmengine ``InstanceData`` with ``bboxes``
(n, 4) in (x1, y1, x2, y2), ``scores`` (n, ) and ``labels`` (n, ).
"""
from typing import List, Sequence, Tuple

import torch
from mmcv.ops import batched_nms
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor


def _as_tensor(boxes) -> Tensor:
    """The plain (n, 4) tensor of a tensor or an mmdet ``BaseBoxes``."""
    return boxes.tensor if hasattr(boxes, 'tensor') else boxes


def _concat(results: Sequence[InstanceData],
            arg: str) -> Tuple[Tensor, Tensor, Tensor]:
    """Concatenate ``bboxes``, ``scores`` and ``labels`` of all models.

    Returns:
        tuple[Tensor, Tensor, Tensor]: boxes (n, 4) float, scores (n, )
        float and labels (n, ) long; empty with these shapes when there is
        no input box (CPU when ``results`` is empty).
    """
    for i, res in enumerate(results):
        missing = {'bboxes', 'scores', 'labels'} - set(res.keys())
        if missing:
            raise ValueError(f'`{arg}[{i}]` lacks the field(s) '
                             f'{sorted(missing)}')
    if len(results) == 0:
        return (torch.zeros(0, 4), torch.zeros(0),
                torch.zeros(0, dtype=torch.long))
    boxes = torch.cat([_as_tensor(r.bboxes).reshape(-1, 4).float()
                       for r in results])
    scores = torch.cat([r.scores.reshape(-1).float() for r in results])
    labels = torch.cat([r.labels.reshape(-1).long() for r in results])
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f'`{arg}`: every result needs as many `scores` and '
                         '`labels` as `bboxes`')
    return boxes, scores, labels


def _check_max_per_img(max_per_img: int) -> None:
    if int(max_per_img) != max_per_img or max_per_img < 1:
        raise ValueError('`max_per_img` must be a positive integer, got '
                         f'{max_per_img}')


def pool_nms_ensemble(results: Sequence[InstanceData],
                      iou_thr: float = 0.5,
                      max_per_img: int = 100) -> InstanceData:
    """Pool the models' detections of one image and keep the best by NMS.

    Boxes of the same class overlapping a higher-scoring one by IoU >
    ``iou_thr`` are suppressed, whichever model they come from. The
    highest-scoring box of any model always survives, which makes this a
    score-level max: on a single-object image the top-1 result is the most
    confident model's best box.

    Args:
        results (Sequence[InstanceData]): One image's detections of each
            model, with ``bboxes`` (n_m, 4), ``scores`` (n_m, ) and
            ``labels`` (n_m, ).
        iou_thr (float): IoU threshold of the class-wise NMS.
            Defaults to 0.5.
        max_per_img (int): Number of boxes kept at most. Defaults to 100.

    Returns:
        InstanceData: ``bboxes`` (k, 4) float, ``scores`` (k, ) float and
        ``labels`` (k, ) long, sorted by score descending,
        k <= ``max_per_img``.
    """
    _check_max_per_img(max_per_img)
    boxes, scores, labels = _concat(results, 'results')
    if len(boxes) == 0:
        # mmcv's batched_nms takes boxes.max() first, which fails when empty
        return InstanceData(bboxes=boxes, scores=scores, labels=labels)
    _, keep = batched_nms(boxes, scores, labels,
                          dict(type='nms', iou_threshold=iou_thr))
    keep = keep[:max_per_img]  # batched_nms sorts by score descending
    return InstanceData(bboxes=boxes[keep], scores=scores[keep],
                        labels=labels[keep])


def weighted_boxes_fusion(results: Sequence[InstanceData],
                          iou_thr: float = 0.55,
                          skip_box_thr: float = 0.0,
                          conf_type: str = 'avg',
                          max_per_img: int = 100) -> InstanceData:
    """Weighted Boxes Fusion of the models' detections of one image.

    As ``ensemble_boxes.weighted_boxes_fusion`` (Solovyev et al. 2021) with
    equal model weights, in absolute coordinates and without its clipping to
    [0, 1]: boxes with score < ``skip_box_thr`` or zero area are dropped,
    the rest are visited by descending score; each joins the cluster of the
    same class whose current fused box overlaps it most if that IoU is >
    ``iou_thr``, else it starts a new cluster. The fused box is the
    score-weighted mean of the cluster's boxes. The fused score, with T
    boxes in the cluster and M models, is ``mean score * min(T, M) / M``
    for ``conf_type='avg'`` (clusters found by few models are down-weighted)
    and the cluster's max score for ``conf_type='max'``.

    The loop over boxes is sequential by nature (each box sees the clusters
    built so far); it runs on the CPU and the result is moved back.

    Args:
        results (Sequence[InstanceData]): One image's detections of each of
            the M models, with ``bboxes`` (n_m, 4), ``scores`` (n_m, ) and
            ``labels`` (n_m, ).
        iou_thr (float): IoU above which a box joins a cluster.
            Defaults to 0.55.
        skip_box_thr (float): Boxes scoring below it are ignored.
            Defaults to 0.0.
        conf_type (str): ``'avg'`` or ``'max'``. Defaults to ``'avg'``.
        max_per_img (int): Number of fused boxes kept at most.
            Defaults to 100.

    Returns:
        InstanceData: ``bboxes`` (k, 4) float, ``scores`` (k, ) float and
        ``labels`` (k, ) long, sorted by score descending.
    """
    if conf_type not in ('avg', 'max'):
        raise ValueError(
            f"`conf_type` must be 'avg' or 'max', got {conf_type!r}")
    _check_max_per_img(max_per_img)
    boxes, scores, labels = _concat(results, 'results')
    device, num_models = boxes.device, max(len(results), 1)
    # ensemble_boxes also drops zero-area boxes (they match nothing)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = (scores >= skip_box_thr) & (area > 0)
    # stable, so equal scores keep the model order
    order = scores[keep].argsort(descending=True, stable=True)
    boxes, scores, labels = (x[keep][order].cpu()
                             for x in (boxes, scores, labels))

    assign = _wbf_clusters(boxes, scores, labels, iou_thr)
    k = int(assign.max()) + 1 if len(assign) else 0
    count = torch.bincount(assign, minlength=k)
    ssum = scores.new_zeros(k).index_add_(0, assign, scores)
    wsum = boxes.new_zeros(k, 4).index_add_(0, assign, scores[:, None] * boxes)
    bsum = boxes.new_zeros(k, 4).index_add_(0, assign, boxes)
    # a cluster of zero scores has no weights: take the plain mean
    fused = torch.where(ssum[:, None] > 0,
                        wsum / ssum.clamp(min=1e-12)[:, None],
                        bsum / count.clamp(min=1)[:, None])
    if conf_type == 'avg':
        conf = ssum / count * count.clamp(max=num_models) / num_models
    else:
        conf = scores.new_zeros(k).scatter_reduce_(
            0, assign, scores, 'amax', include_self=False)
    cluster_labels = labels.new_zeros(k).scatter_(0, assign, labels)
    order = conf.argsort(descending=True, stable=True)[:max_per_img]
    return InstanceData(bboxes=fused[order].to(device),
                        scores=conf[order].to(device),
                        labels=cluster_labels[order].to(device))


def _wbf_clusters(boxes: Tensor, scores: Tensor, labels: Tensor,
                  iou_thr: float) -> Tensor:
    """WBF's cluster index of each box, boxes visited in the given order.

    Args:
        boxes (Tensor): Boxes of shape (n, 4), sorted by score descending.
        scores (Tensor): Their scores of shape (n, ).
        labels (Tensor): Their classes of shape (n, ).
        iou_thr (float): IoU with a cluster's fused box above which a box
            joins it.

    Returns:
        Tensor: Long cluster index of shape (n, ), numbered in the order the
        clusters are started.
    """
    n = len(boxes)
    assign = torch.zeros(n, dtype=torch.long)
    # the running fused box of each cluster decides the later matches
    fused, wsum = boxes.new_zeros(n, 4), boxes.new_zeros(n, 4)
    ssum = scores.new_zeros(n)
    cluster_labels = labels.new_full((n, ), -1)
    k = 0
    for i in range(n):
        j = -1
        if k:
            ious = bbox_overlaps(boxes[i, None], fused[:k])[0]
            # a box may only join a cluster of its own class
            ious = ious.masked_fill(cluster_labels[:k] != labels[i], -1.)
            j = int(ious.argmax())
            j = j if ious[j] > iou_thr else -1
        if j < 0:
            j, k = k, k + 1
            cluster_labels[j] = labels[i]
        assign[i] = j
        wsum[j] += scores[i] * boxes[i]
        ssum[j] += scores[i]
        fused[j] = wsum[j] / ssum[j] if ssum[j] > 0 else \
            boxes[:i + 1][assign[:i + 1] == j].mean(dim=0)
    return assign


_METHODS = dict(nms=pool_nms_ensemble, wbf=weighted_boxes_fusion)


def batch_ensemble(per_model: Sequence[Sequence[InstanceData]],
                   method: str = 'nms',
                   **kwargs) -> List[InstanceData]:
    """Ensemble several models' detections of a batch, image by image.

    Args:
        per_model (Sequence[Sequence[InstanceData]]): ``per_model[m][i]`` is
            model m's detections of image i; every model covers the same B
            images.
        method (str): ``'nms'`` for :func:`pool_nms_ensemble` or ``'wbf'``
            for :func:`weighted_boxes_fusion`. Defaults to ``'nms'``.
        **kwargs: Passed to the chosen function (``iou_thr``,
            ``max_per_img``, ...).

    Returns:
        list[InstanceData]: The B ensembled results.
    """
    if method not in _METHODS:
        raise ValueError(f'`method` must be one of {sorted(_METHODS)}, got '
                         f'{method!r}')
    if len(per_model) == 0:
        raise ValueError('`per_model` must hold at least one model')
    lengths = [len(preds) for preds in per_model]
    if len(set(lengths)) != 1:
        raise ValueError('every model of `per_model` must cover the same '
                         f'images, got {lengths} results')
    fn = _METHODS[method]
    return [fn(list(image), **kwargs) for image in zip(*per_model)]
