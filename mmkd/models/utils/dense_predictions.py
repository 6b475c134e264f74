"""Every location's class logits and decoded box of a dense mmdet head, decoded the way the
head's own ``predict_by_feat`` decodes them (its priors, strides and ``bbox_coder``)."""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads import (ATSSHead, AutoAssignHead, DDODHead, FCOSHead,
                                      FreeAnchorRetinaHead, FSAFHead, GFLHead, NASFCOSHead,
                                      PAAHead, PISARetinaHead, PISASSDHead, RetinaHead,
                                      RetinaSepBNHead, RTMDetHead, RTMDetSepBNHead, SSDHead,
                                      TOODHead, VFNetHead, YOLOFHead, YOLOV3Head, YOLOXHead)
from mmdet.models.layers import inverse_sigmoid
import torch.nn.functional as F
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor, nn

# How each supported head turns its raw outputs into boxes, matched by exact type: a subclass
# may decode differently (LDHead, LADHead and RTMDetInsSepBNHead need more than boxes).
#   'coder': bbox_coder.decode(priors, regression), as BaseDenseHead._predict_by_feat_single;
#   'distribution': GFL's integral of the side distributions × stride from anchor centres;
#   'boxes': the head already outputs boxes in stride units (TOOD), × stride;
#   'yolox': centre offsets and log sizes in stride units from point priors (YOLOXHead's
#       _bbox_decode), score σ(class) · σ(objectness);
#   'yolov3': one map per level of A·(4 + 1 + C) channels, σ of the centre offsets through
#       the YOLOBBoxCoder with the level's stride, score σ(class) · σ(objectness) (the
#       objectness is the score factor multiclass_nms multiplies in).
DECODING: Dict[type, str] = {
    RetinaHead: 'coder', RetinaSepBNHead: 'coder', FreeAnchorRetinaHead: 'coder',
    PISARetinaHead: 'coder', ATSSHead: 'coder', DDODHead: 'coder', PAAHead: 'coder',
    FSAFHead: 'coder', YOLOFHead: 'coder', SSDHead: 'coder', PISASSDHead: 'coder',
    FCOSHead: 'coder', NASFCOSHead: 'coder', AutoAssignHead: 'coder', VFNetHead: 'coder',
    RTMDetHead: 'coder', RTMDetSepBNHead: 'coder', GFLHead: 'distribution', TOODHead: 'boxes',
    YOLOXHead: 'yolox', YOLOV3Head: 'yolov3',
}
SUPPORTED_HEADS: Tuple[str, ...] = tuple(sorted(h.__name__ for h in DECODING))


class DensePredictions(NamedTuple):
    """Per image and location n (all levels and priors, flattened in mmdet's order):

    ``cls_logits`` (B, N, C) for sigmoid heads, (B, N, C + 1) for softmax heads (SSD: the
    last channel is the background); for heads that score by a product of probabilities
    (TOOD; YOLOX and YOLOv3: class × objectness) the logit of that product; ``boxes``
    (B, N, 4) decoded ``(x1, y1, x2, y2)`` in pixels of the padded input, not clipped; ``dists`` (B, N, 4, reg_max + 1) GFL side
    distributions, else None; ``use_sigmoid`` whether classes are scored by a sigmoid.
    """
    cls_logits: Tensor
    boxes: Tensor
    dists: Optional[Tensor]
    use_sigmoid: bool = True

    def class_probs(self) -> Tensor:
        """(B, N, C) foreground class probabilities, as the head scores them."""
        if self.use_sigmoid:
            return self.cls_logits.sigmoid()
        return self.cls_logits.softmax(-1)[..., :-1]


def unsupported_reason(head: nn.Module) -> Optional[str]:
    """Why ``head`` cannot be distilled location by location, or None when it can."""
    if type(head) not in DECODING:
        return 'not a dense head whose boxes mmkd decodes'
    if getattr(getattr(head, 'loss_cls', None), 'custom_cls_channels', False):
        return (f'its loss_cls {type(head.loss_cls).__name__} scores classes with a custom '
                'activation')
    return None


def _flatten(maps: Sequence[Tensor], last: int) -> Tensor:
    """Level maps (B, A·last, H, W) → (B, Σ H·W·A, last), mmdet's prior order."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, last) for m in maps], 1)


def _predict_inputs(head: nn.Module, outs: Sequence[List[Tensor]]) -> Tuple[list, list]:
    """The (cls_scores, bbox_preds) that ``head.predict_by_feat`` would get for the same
    features: the head's training-mode outputs differ for some heads."""
    cls_scores, bbox_preds = list(outs[0]), list(outs[1])
    if isinstance(head, VFNetHead) and head.training:
        # (cls, init, refine) in training, (cls, refine) in eval: predict uses the refined.
        bbox_preds = list(outs[2])
    elif type(head) in (FCOSHead, NASFCOSHead) and head.norm_on_bbox and head.training:
        # FCOS multiplies normalised distances by the stride in eval mode only.
        bbox_preds = [p * s[0] for p, s in zip(bbox_preds, head.prior_generator.strides)]
    return cls_scores, bbox_preds


def product_logit(a: Tensor, b: Tensor) -> Tensor:
    """``logit(σ(a) · σ(b))``, computed in log space (exact for tiny products, where
    ``inverse_sigmoid``'s clamp would cut them), the product capped at 1 − 1e-6."""
    log_p = (F.logsigmoid(a) + F.logsigmoid(b)).clamp(max=-1e-6)
    return log_p - torch.log1p(-log_p.exp())


def _yolo_predictions(head: nn.Module, outs: Sequence[List[Tensor]]) -> DensePredictions:
    """YOLOX and YOLOv3, decoded as their ``predict_by_feat`` decode."""
    maps = outs[0]
    b, dtype, device = maps[0].shape[0], maps[0].dtype, maps[0].device
    sizes = [m.shape[-2:] for m in maps]
    if isinstance(head, YOLOXHead):
        priors = torch.cat(head.prior_generator.grid_priors(sizes, dtype=dtype, device=device,
                                                            with_stride=True))
        cls_logits = product_logit(_flatten(outs[0], head.cls_out_channels),
                                   _flatten(outs[2], 1))
        return DensePredictions(cls_logits, head._bbox_decode(priors, _flatten(outs[1], 4)),
                                None, True)
    preds = _flatten(maps, head.num_attrib)  # YOLOv3: (B, N, 4 + 1 + C)
    anchors = head.prior_generator.grid_priors(sizes, device=device)
    strides = torch.cat([preds.new_full((len(a), 1), s)
                         for a, s in zip(anchors, head.featmap_strides)])
    anchors = torch.cat(anchors)
    regression = torch.cat([preds[..., :2].sigmoid(), preds[..., 2:4]], -1)
    boxes = get_box_tensor(head.bbox_coder.decode(anchors, regression, strides))
    cls_logits = product_logit(preds[..., 5:], preds[..., 4:5])
    return DensePredictions(cls_logits, boxes, None, True)


def dense_predictions(head: nn.Module, outs: Sequence[List[Tensor]]) -> DensePredictions:
    """Decode the raw outputs ``outs = head(feats)`` of a supported dense head
    (:data:`SUPPORTED_HEADS`) into every location's class logits and box, as the head's own
    ``predict_by_feat`` does before score thresholds, top-k and NMS.
    """
    reason = unsupported_reason(head)
    if reason is not None:
        raise TypeError(f'{type(head).__name__}: {reason}; supported heads: '
                        f'{", ".join(SUPPORTED_HEADS)}')
    if DECODING[type(head)] in ('yolox', 'yolov3'):
        return _yolo_predictions(head, outs)
    cls_scores, bbox_preds = _predict_inputs(head, outs)
    sizes = [m.shape[-2:] for m in cls_scores]
    b, dtype, device = cls_scores[0].shape[0], cls_scores[0].dtype, cls_scores[0].device
    priors = head.prior_generator.grid_priors(sizes, dtype=dtype, device=device)
    strides = torch.cat([p.new_full((len(p), 1), s[0])
                         for p, s in zip(priors, head.prior_generator.strides)])
    priors = torch.cat(priors)
    cls_logits = _flatten(cls_scores, head.cls_out_channels)
    kind = DECODING[type(head)]
    dists = None
    if kind == 'distribution':
        bins = head.reg_max + 1
        dists = _flatten(bbox_preds, 4 * bins).reshape(b, -1, 4, bins)
        proj = torch.arange(bins, device=device, dtype=dists.dtype)
        distances = (dists.softmax(-1) * proj).sum(-1) * strides
        boxes = head.bbox_coder.decode(head.anchor_center(priors).expand(b, -1, -1), distances)
    elif kind == 'boxes':
        boxes = _flatten(bbox_preds, 4) * strides
        # TOOD's scores are already probabilities (sigmoid geometric mean of two branches).
        cls_logits = inverse_sigmoid(cls_logits)
    else:
        regression = _flatten(bbox_preds, head.bbox_coder.encode_size)
        boxes = head.bbox_coder.decode(priors.repeat(b, 1),
                                       regression.reshape(-1, regression.shape[-1]))
    boxes = get_box_tensor(boxes).reshape(b, -1, 4)
    return DensePredictions(cls_logits, boxes, dists, bool(head.use_sigmoid_cls))
