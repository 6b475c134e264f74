from typing import Dict, List, Optional

import torch
from mmdet.structures import DetDataSample
from torch import Tensor

from mmkd.registry import MODELS
from ..losses import box_distance
from ..utils.ensemble_detections import attach_detections
from ..utils.settings_check import check_model_settings, model_config_key
from .base_kdml_distiller import BaseKDMLDistiller, ModelCfg


@MODELS.register_module()
class SingleBoxKDMLDistiller(BaseKDMLDistiller):
    """Teacher → K students KD + mutual learning in box space, for ``SingleBoxRegressor``
    models (paper B's own setting: classification backbones localising one polyp; SPEC §5.3
    mode R).

    With ``D(a, b) = L1(a, b) + (1 − GIoU(a, b))`` on normalised boxes:
    ``L_k = α·D(b_k, g) + β·D(b_k, sg b_t) + γ/(K−1)·Σ_{k'≠k} D(b_k, sg b_{k'})`` plus each
    model's confidence loss (β, γ times ``distill_factor``, see :class:`BaseKDMLDistiller`);
    an online teacher adds ``D(b_t, g)``. Keys: ``{model}.loss_box``,
    ``{model}.loss_conf``, ``student{k}.loss_kd_box``, ``student{k}.loss_ml_box``. The
    ensemble keeps, per image, the most confident student's box (pooled class-wise NMS).

    Args:
        students (list[dict | str]): K ≥ 1 ``SingleBoxRegressor`` configs.
        teacher (dict | str, optional): Teacher config. Defaults to None.
        teacher_mode (str): 'online' or 'offline'. Defaults to 'online'.
        teacher_ckpt (str, optional): Teacher checkpoint. Defaults to None.
        gt_weight (float): α. Defaults to 0.1.
        kd_weight (float): β. Defaults to 0.45.
        ml_weight (float): γ. Defaults to 0.45.
        predict_on (str): 'ensemble', 'teacher' or 'student{k}'. Defaults to 'ensemble'.
        data_preprocessor (dict, optional): mmdet ``DetDataPreprocessor``. Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 students: List[ModelCfg],
                 teacher: Optional[ModelCfg] = None,
                 teacher_mode: str = 'online',
                 teacher_ckpt: Optional[str] = None,
                 gt_weight: float = 0.1,
                 kd_weight: float = 0.45,
                 ml_weight: float = 0.45,
                 predict_on: str = 'ensemble',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        check_model_settings(weights=dict(gt_weight=gt_weight, kd_weight=kd_weight,
                                          ml_weight=ml_weight))
        super().__init__(students, teacher, teacher_mode, teacher_ckpt, predict_on,
                         data_preprocessor, init_cfg)
        for name, model in self.named_models().items():
            check_model_settings(model_config_key(name), weights=dict(
                box_weight=model.box_weight, conf_weight=model.conf_weight))
        self.check_mutual_learning(ml_weight)
        self.gt_weight, self.kd_weight, self.ml_weight = gt_weight, kd_weight, ml_weight

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return {name: m.boxes(inputs) for name, m in self.named_models().items()}
        raise RuntimeError(f'Invalid mode "{mode}": use "loss", "predict" or "tensor"')

    def loss(self, inputs: Tensor, data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        outs, losses = {}, {}
        for name, model in self.named_models().items():
            if name == 'teacher' and self.offline:
                with torch.no_grad():
                    outs[name] = model.boxes(inputs)
                continue
            outs[name] = model.boxes(inputs)
            weight = 1.0 if name == 'teacher' else self.gt_weight
            losses.update(self.prefixed(name, model.own_losses(*outs[name], data_samples,
                                                               weight)))
        students = [f'student{k}' for k in range(self.num_students)]
        kd_weight = self.distill_factor * self.kd_weight
        ml_weight = self.distill_factor * self.ml_weight
        for name in students:
            boxes = outs[name][0]
            if self.teacher is not None and self.kd_weight > 0:
                losses[f'{name}.loss_kd_box'] = kd_weight * box_distance(
                    boxes, outs['teacher'][0].detach()).mean()
            if self.ml_weight > 0:
                peers = [box_distance(boxes, outs[p][0].detach()).mean()
                         for p in students if p != name]
                losses[f'{name}.loss_ml_box'] = ml_weight * sum(peers) / len(peers)
        return losses

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: List[DetDataSample]
                ) -> List[DetDataSample]:
        per_model = {name: model.to_instances(*model.boxes(inputs), data_samples)
                     for name, model in self.named_models().items()}
        return attach_detections(data_samples, per_model, self.predict_on, self.num_students)
