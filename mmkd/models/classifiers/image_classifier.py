from typing import List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmkd.registry import MODELS
from ..utils import FiniteLossMixin


@MODELS.register_module()
class ImageClassifier(FiniteLossMixin, BaseModel):
    """Backbone → global average pooling → linear classifier; a teacher or student of KD+ML,
    or a standalone model (e.g. a student exported from a distiller).

    Args:
        backbone (dict): Backbone config; its last output map is pooled. It must expose
            ``out_channels`` (``TorchvisionBackbone``, ``CIFARResNet``, ...).
        num_classes (int): Number of classes.
        name (str): Model name used in metric keys (``'{name}/top1_acc'``). Defaults to
            'model'.
        data_preprocessor (dict, optional): Used when the classifier runs alone; inside a
            distiller the distiller's preprocessor runs once for all models. Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 num_classes: int,
                 name: str = 'model',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.num_classes, self.name = num_classes, name
        self.head = nn.Linear(self.backbone.out_channels[-1], num_classes)

    def logits(self, inputs: Tensor) -> Tensor:
        """Class logits, shape (B, num_classes), for normalised images (B, 3, H, W)."""
        return self.head(self.backbone(inputs)[-1].mean((2, 3)))

    def forward(self, inputs: Tensor, data_samples: Optional[dict] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.logits(inputs)
        if mode == 'loss':
            return dict(loss_cls=F.cross_entropy(self.logits(inputs),
                                                 data_samples['gt_label']))
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}": use "loss", "predict" or "tensor"')

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: dict) -> List[dict]:
        logits = self.logits(inputs)
        probs = logits.softmax(1)
        return [dict(sample_idx=data_samples['sample_idx'], gt_label=data_samples['gt_label'],
                     probs={self.name: probs}, log_probs={self.name: logits.log_softmax(1)},
                     pred_label=probs.argmax(1), pred_scores=probs)]
