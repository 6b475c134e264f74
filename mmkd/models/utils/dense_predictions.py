"""Every location's class logits and decoded box of a dense mmdet head, as flat tensors."""
from typing import List, NamedTuple, Optional, Sequence

import torch
from mmdet.models.dense_heads import AnchorHead, FCOSHead, GFLHead
from mmdet.structures.bbox import distance2bbox
from torch import Tensor, nn

SUPPORTED_HEADS = (GFLHead, FCOSHead, AnchorHead)


class DensePredictions(NamedTuple):
    """Per image and location n (all levels and priors, flattened in mmdet's order):

    ``cls_logits`` (B, N, C); ``boxes`` (B, N, 4) decoded ``(x1, y1, x2, y2)`` in pixels of the
    padded input; ``dists`` (B, N, 4, reg_max + 1) GFL side distributions, else None.
    """
    cls_logits: Tensor
    boxes: Tensor
    dists: Optional[Tensor]


def _flatten(maps: Sequence[Tensor], last: int) -> Tensor:
    """Level maps (B, A·last, H, W) → (B, Σ H·W·A, last), mmdet's prior order."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, last) for m in maps], 1)


def dense_predictions(head: nn.Module, cls_scores: List[Tensor],
                      bbox_preds: List[Tensor]) -> DensePredictions:
    """Decode the raw outputs of a GFL, FCOS or anchor-delta head (RetinaNet, ATSS)."""
    sizes = [m.shape[-2:] for m in cls_scores]
    device, dtype = cls_scores[0].device, bbox_preds[0].dtype
    b = cls_scores[0].shape[0]
    cls_logits = _flatten(cls_scores, head.cls_out_channels)
    if isinstance(head, GFLHead):
        bins = head.reg_max + 1
        dists = _flatten(bbox_preds, 4 * bins).reshape(b, -1, 4, bins)
        proj = torch.arange(bins, device=device, dtype=dtype)
        anchors = head.prior_generator.grid_priors(sizes, dtype=dtype, device=device)
        strides = torch.cat([a.new_full((len(a), 1), s[0])
                             for a, s in zip(anchors, head.prior_generator.strides)])
        centers = head.anchor_center(torch.cat(anchors))
        distances = (dists.softmax(-1) * proj).sum(-1) * strides
        return DensePredictions(cls_logits, distance2bbox(centers.expand(b, -1, -1), distances),
                                dists)
    if isinstance(head, FCOSHead):
        points = torch.cat(head.prior_generator.grid_priors(sizes, dtype=dtype, device=device))
        scale = [s[0] if head.norm_on_bbox and head.training else 1.0
                 for s in head.prior_generator.strides]
        distances = _flatten([p * s for p, s in zip(bbox_preds, scale)], 4)
        return DensePredictions(cls_logits, distance2bbox(points.expand(b, -1, -1), distances),
                                None)
    if isinstance(head, AnchorHead):
        anchors = torch.cat(head.prior_generator.grid_priors(sizes, dtype=dtype, device=device))
        deltas = _flatten(bbox_preds, head.bbox_coder.encode_size)
        boxes = head.bbox_coder.decode(anchors.repeat(b, 1), deltas.reshape(-1, deltas.shape[-1]))
        return DensePredictions(cls_logits, boxes.reshape(b, -1, 4), None)
    raise TypeError(f'{type(head).__name__} is not supported for box distillation: use a '
                    f'{", ".join(h.__name__ for h in SUPPORTED_HEADS)} (or subclass) head')
