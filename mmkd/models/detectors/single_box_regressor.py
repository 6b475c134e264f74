from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_overlaps
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from mmkd.registry import MODELS
from ..losses import box_distance
from ..utils import FiniteLossMixin
from ..utils.host_copy import to_device_async


def image_sizes(data_samples: List[DetDataSample], like: Tensor) -> Tensor:
    """(B, 4) ``[w, h, w, h]`` of each resized image (before padding)."""
    return to_device_async([[s.img_shape[1], s.img_shape[0]] * 2 for s in data_samples], like)


def nearest_gt(boxes: Tensor, data_samples: List[DetDataSample]) -> Tensor:
    """For each image's predicted box (B, 4), normalised, the ground-truth box (normalised)
    at the smallest L1 + (1 − GIoU) distance: multi-polyp frames train towards the closest."""
    gts = [s.gt_instances.bboxes.to(boxes) for s in data_samples]
    empty = [s.get('img_path', b) for b, (s, g) in enumerate(zip(data_samples, gts))
             if len(g) == 0]
    if empty:
        raise ValueError(f'images {empty} have no ground-truth box: a single-box regressor '
                         'needs one per image')
    padded = pad_sequence(gts, batch_first=True) / image_sizes(data_samples, boxes)[:, None]
    valid = pad_sequence([torch.ones(len(g), dtype=torch.bool, device=boxes.device)
                          for g in gts], batch_first=True)
    b, g = valid.shape
    dist = box_distance(boxes.detach()[:, None].expand(b, g, 4).reshape(-1, 4),
                        padded.reshape(-1, 4)).view(b, g).masked_fill(~valid, float('inf'))
    return padded[torch.arange(b, device=boxes.device), dist.argmin(1)]


@MODELS.register_module()
class SingleBoxRegressor(FiniteLossMixin, BaseModel):
    """A classification backbone regressing one box and its confidence per image (paper B's
    polyp localisation; SPEC §5.3 mode R).

    backbone → global average pooling → ``Linear → sigmoid`` giving ``(cx, cy, w, h)``
    normalised by the image size, converted to ``(x1, y1, x2, y2)``; and ``Linear`` giving a
    confidence logit trained towards the (detached) IoU of the box with its ground truth.
    ``L = box_weight·D(b, g) + conf_weight·BCE(c, IoU(b, g))``, ``D = L1 + (1 − GIoU)``.

    Args:
        backbone (dict): Backbone config exposing ``out_channels``.
        box_weight (float): Weight of the box loss alone. Defaults to 1.0.
        conf_weight (float): Weight of the confidence loss. Defaults to 1.0.
        data_preprocessor (dict, optional): mmdet ``DetDataPreprocessor``. Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, backbone: dict, box_weight: float = 1.0, conf_weight: float = 1.0,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        channels = self.backbone.out_channels[-1]
        self.box_fc, self.conf_fc = nn.Linear(channels, 4), nn.Linear(channels, 1)
        self.box_weight, self.conf_weight = box_weight, conf_weight

    def boxes(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Normalised boxes (B, 4) xyxy in [0, 1] and confidence logits (B,)."""
        feat = self.backbone(inputs)[-1].mean((2, 3))
        cx, cy, w, h = self.box_fc(feat).sigmoid().unbind(1)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        return boxes.clamp(0, 1), self.conf_fc(feat).squeeze(1)

    def own_losses(self, boxes: Tensor, conf: Tensor, data_samples, box_weight: float) -> dict:
        gt = nearest_gt(boxes, data_samples)
        iou = bbox_overlaps(boxes.detach(), gt, is_aligned=True)
        return dict(loss_box=box_weight * box_distance(boxes, gt).mean(),
                    loss_conf=self.conf_weight * F.binary_cross_entropy_with_logits(conf, iou))

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'tensor':
            return self.boxes(inputs)
        if mode == 'loss':
            return self.own_losses(*self.boxes(inputs), data_samples, self.box_weight)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}": use "loss", "predict" or "tensor"')

    def to_instances(self, boxes: Tensor, conf: Tensor,
                     data_samples: List[DetDataSample]) -> List[InstanceData]:
        """One box per image in original-image pixels (``rescale=True`` convention)."""
        pixels = boxes * image_sizes(data_samples, boxes)
        scale = pixels.new_tensor([[s.scale_factor[0], s.scale_factor[1]] * 2
                                   for s in data_samples])
        pixels = pixels / scale
        return [InstanceData(bboxes=pixels[b:b + 1], scores=conf[b:b + 1].sigmoid(),
                             labels=conf.new_zeros(1, dtype=torch.long))
                for b in range(len(data_samples))]

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: List[DetDataSample]
                ) -> List[DetDataSample]:
        for sample, inst in zip(data_samples,
                                self.to_instances(*self.boxes(inputs), data_samples)):
            sample.pred_instances = inst
        return data_samples
