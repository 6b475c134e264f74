import math
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from ..losses import kd_kl_div_loss, reverse_kd_kl_div_loss
from ..utils.settings_check import check_model_settings
from .base_kdml_distiller import BaseKDMLDistiller, ModelCfg


@MODELS.register_module()
class KDMLDistiller(BaseKDMLDistiller):
    """Teacher → K students knowledge distillation with peer mutual learning, for classifiers
    (paper B, SPEC §5.1), and the students' max-ensemble.

    For student k with logits ``z_k``, teacher logits ``z_t``, ``p^T = softmax(z/T)``:
    ``L_k = α·CE(y, z_k) + β·T²·KL(sg p_t^T ‖ p_k^T)
    + γ·T²·1/(K−1)·Σ_{k'≠k} KL(sg p_{k'}^T ‖ p_k^T)`` (β and γ times ``distill_factor``,
    1 unless :class:`DistillScheduleHook` ramps it; ``peer_kl_direction='peer_to_self'``,
    the DML convention; ``'self_to_peer'`` uses ``KL(p_k^T ‖ sg p_{k'}^T)``). An online teacher
    adds ``CE(y, z_t)``. All models take one forward pass on the same batch and are updated in
    the same step (peers see each other's pre-update predictions), each by its own optimiser
    with ``PerModelOptimWrapperConstructor``. KD only: ``ml_weight=0``; ML only:
    ``teacher=None``.

    Loss keys: ``teacher.loss_cls`` (online), ``student{k}.loss_cls``, ``student{k}.loss_kd``,
    ``student{k}.loss_ml``. ``predict`` returns the softmax of every model and of the ensemble:
    ``max_k p_k(c)`` renormalised over classes (``ensemble='max'``) or the mean, and their
    logarithms (``log_probs``, for the metric's NLL).

    Args:
        students (list[dict | str]): K ≥ 1 classifier configs (``ImageClassifier``).
        teacher (dict | str, optional): Teacher classifier config. Defaults to None.
        teacher_mode (str): 'online' or 'offline'. Defaults to 'online'.
        teacher_ckpt (str, optional): Teacher checkpoint (offline). Defaults to None.
        cls_weight (float): α. Defaults to 0.1.
        kd_weight (float): β. Defaults to 0.45.
        ml_weight (float): γ; 0 disables mutual learning. Defaults to 0.45.
        temperature (float): T of the KD and ML terms (each multiplied by T²). Defaults to 2.0.
        peer_kl_direction (str): 'peer_to_self' or 'self_to_peer'. Defaults to 'peer_to_self'.
        ensemble (str): 'max' or 'mean' over the students' probabilities. Defaults to 'max'.
        predict_on (str): 'ensemble', 'teacher' or 'student{k}'. Defaults to 'ensemble'.
        data_preprocessor (dict, optional): Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 students: List[ModelCfg],
                 teacher: Optional[ModelCfg] = None,
                 teacher_mode: str = 'online',
                 teacher_ckpt: Optional[str] = None,
                 cls_weight: float = 0.1,
                 kd_weight: float = 0.45,
                 ml_weight: float = 0.45,
                 temperature: float = 2.0,
                 peer_kl_direction: str = 'peer_to_self',
                 ensemble: str = 'max',
                 predict_on: str = 'ensemble',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        check_model_settings(temperatures=dict(temperature=temperature), weights=dict(
            cls_weight=cls_weight, kd_weight=kd_weight, ml_weight=ml_weight))
        super().__init__(students, teacher, teacher_mode, teacher_ckpt, predict_on,
                         data_preprocessor, init_cfg)
        if peer_kl_direction not in ('peer_to_self', 'self_to_peer'):
            raise ValueError("model.peer_kl_direction must be 'peer_to_self' or "
                             f"'self_to_peer', got {peer_kl_direction!r}")
        if ensemble not in ('max', 'mean'):
            raise ValueError(f"model.ensemble must be 'max' or 'mean', got {ensemble!r}")
        self.check_mutual_learning(ml_weight)
        classes = {name: m.num_classes for name, m in self.named_models().items()}
        if len(set(classes.values())) != 1:
            raise ValueError(f'teacher and students must predict the same classes, got '
                             f'num_classes {classes} (model.teacher / model.students[k])')
        self.cls_weight, self.kd_weight, self.ml_weight = cls_weight, kd_weight, ml_weight
        self.temperature, self.ensemble = temperature, ensemble
        self.peer_kl_direction = peer_kl_direction

    @classmethod
    def standalone_student_cfg(cls, model_cfg: dict, k: int) -> dict:
        """The student's classifier config, named ``student{k}`` so that it reports the
        same metric keys alone as inside the distiller."""
        return dict(super().standalone_student_cfg(model_cfg, k), name=f'student{k}')

    def forward(self, inputs: Tensor, data_samples: Optional[dict] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.all_logits(inputs)
        raise RuntimeError(f'Invalid mode "{mode}": use "loss", "predict" or "tensor"')

    def all_logits(self, inputs: Tensor) -> Dict[str, Tensor]:
        """Logits of every model on the same batch: teacher (if any), then students."""
        out = {}
        if self.teacher is not None:
            if self.offline:
                with torch.no_grad():
                    out['teacher'] = self.teacher.logits(inputs)
            else:
                out['teacher'] = self.teacher.logits(inputs)
        for k, student in enumerate(self.students):
            out[f'student{k}'] = student.logits(inputs)
        return out

    def _kl(self, student_logits: Tensor, target_logits: Tensor, peer: bool) -> Tensor:
        if peer and self.peer_kl_direction == 'self_to_peer':
            return reverse_kd_kl_div_loss(student_logits, target_logits, self.temperature)
        return kd_kl_div_loss(student_logits, target_logits, self.temperature)

    def loss(self, inputs: Tensor, data_samples: dict) -> Dict[str, Tensor]:
        labels = data_samples['gt_label']
        logits = self.all_logits(inputs)
        losses = {}
        if self.teacher is not None and not self.offline:
            losses['teacher.loss_cls'] = F.cross_entropy(logits['teacher'], labels)
        students = [logits[f'student{k}'] for k in range(self.num_students)]
        kd_weight = self.distill_factor * self.kd_weight
        ml_weight = self.distill_factor * self.ml_weight
        for k, z in enumerate(students):
            name = f'student{k}'
            losses[f'{name}.loss_cls'] = self.cls_weight * F.cross_entropy(z, labels)
            if self.teacher is not None and self.kd_weight > 0:
                losses[f'{name}.loss_kd'] = kd_weight * self._kl(z, logits['teacher'],
                                                                 peer=False)
            if self.ml_weight > 0:
                peers = [self._kl(z, other, peer=True)
                         for j, other in enumerate(students) if j != k]
                losses[f'{name}.loss_ml'] = ml_weight * sum(peers) / len(peers)
        return losses

    def ensemble_probs(self, student_probs: List[Tensor]) -> Tensor:
        """Max (renormalised over classes) or mean of the students' probabilities (B, C)."""
        stacked = torch.stack(student_probs)
        if self.ensemble == 'mean':
            return stacked.mean(0)
        top = stacked.max(0).values
        return top / top.sum(1, keepdim=True)

    def ensemble_log_probs(self, student_log_probs: List[Tensor]) -> Tensor:
        """``log`` of :meth:`ensemble_probs`, from the students' log-probabilities (B, C),
        without underflow: max then renormalise in log space, or log of the mean."""
        stacked = torch.stack(student_log_probs)
        if self.ensemble == 'mean':
            return stacked.logsumexp(0) - math.log(len(student_log_probs))
        top = stacked.max(0).values
        return top - top.logsumexp(1, keepdim=True)

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: dict) -> List[dict]:
        logits = self.all_logits(inputs)
        probs = {name: z.softmax(1) for name, z in logits.items()}
        probs['ensemble'] = self.ensemble_probs(
            [probs[f'student{k}'] for k in range(self.num_students)])
        log_probs = {name: z.log_softmax(1) for name, z in logits.items()}
        log_probs['ensemble'] = self.ensemble_log_probs(
            [log_probs[f'student{k}'] for k in range(self.num_students)])
        chosen = probs[self.predict_on]
        return [dict(sample_idx=data_samples['sample_idx'], gt_label=data_samples['gt_label'],
                     probs=probs, log_probs=log_probs, pred_label=chosen.argmax(1),
                     pred_scores=chosen)]
