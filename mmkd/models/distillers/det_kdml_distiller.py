from contextlib import nullcontext
from typing import Dict, List, Optional

import torch
from mmdet.models.utils import unpack_gt_instances
from mmdet.utils import reduce_mean
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmkd.registry import MODELS
from mmkd.scope_check import check_mmkd_prefixes
from ..losses import (box_kd_loss, cwd_loss, kd_kl_div_loss, ld_kd_loss, pkd_loss,
                      sigmoid_kd_loss)
from ..utils import (DensePredictions, build_adapters, dense_predictions, head_from_layer,
                     level_channels, tower_features)
from ..utils.det_head_check import check_detector_cfg, check_head_geometry
from ..utils.det_kd_settings import (check_box_region, det_cross_kd_settings,
                                     det_feature_kd_settings, resolve_box_region)
from ..utils.ensemble_detections import attach_detections
from ..utils.positive_locations import record_positives
from ..utils.settings_check import check_model_settings

from .base_kdml_distiller import BaseKDMLDistiller, ModelCfg, resolve_model_cfg


@MODELS.register_module()
class DetKDMLDistiller(BaseKDMLDistiller):
    """Teacher → K students KD + peer mutual learning for mmdet dense detectors (paper B on
    detection, SPEC §5.3 mode D), and the max-ensemble of the students' boxes.

    Teacher and students are one-stage detectors of one head family (GFL, FCOS, ATSS or
    RetinaNet) with the same strides, priors and classes, each with its own backbone. For
    student k and a target detector τ (the teacher, or a detached peer):
    ``D(k, τ) = sigmoid_kd(z_k, z_τ) + box_kd(b_k, b_τ; w) [+ ld_weight · LD(d_k, d_τ; w)]``
    (LD only for GFL heads), the class term at every location n, the box and LD terms
    weighted by ``w_n = r_n · max_c σ(z_τ,n)``, where the region ``r`` (``box_region``) keeps
    the locations where the target's box is informative: ``'positive'`` the locations student
    k's own assigner made positive in this step (LD's main region), ``'confident'`` those with
    target confidence ≥ ``box_region_thr``, ``'topk'`` the ``box_region_topk`` most confident
    target locations of each image, ``'all'`` every location; ``'auto'`` is ``'positive'`` for
    heads whose assignment mmkd reads (:data:`POSITIVE_HEADS`), else ``'confident'`` (said in
    the log at build). Then
    ``L_k = det_weight·L_det(k) + s·β·D(k, teacher) + s·γ/(K−1)·Σ_{k'≠k} D(k, k')`` with
    ``s = distill_factor`` (1, or ramped in by :class:`DistillScheduleHook`).
    An online teacher adds its own ``L_det``. Keys: ``teacher.loss_*`` (mmdet's head losses),
    ``student{k}.loss_*``, ``student{k}.loss_kd_cls|box|ld``, ``student{k}.loss_ml_cls|box|ld``.

    **Feature KD** (``feature_kd``, off by default) adds, on the selected FPN levels l with
    weights ``w_l``, ``student{k}.loss_kd_feat = s·weight·Σ_l w_l·F(A(f_k,l), f_teacher,l)``
    and, with ``peers=True``, ``student{k}.loss_ml_feat``, the same averaged over the detached
    peers; ``F`` is :func:`pkd_loss` or :func:`cwd_loss` (temperature ``tau``), ``A`` a 1×1
    conv where the student's FPN channels differ from the target's (else the identity). The
    adapters are the student's: :meth:`trainable_models` lists them with it, so its own
    optimiser trains them; they are in ``adapters['student{k}'][target]``.

    **Cross-head KD** (``cross_kd``, off by default; CrossKD, Wang et al. CVPR 2024): student
    k's head features after ``layer`` tower convs go through the rest of the teacher's head,
    whose parameters enter detached (no gradient reaches them, also online); these
    predictions are distilled against the teacher's own by ``D`` above (class KD, box KD in
    ``box_region``, LD for GFL): ``student{k}.loss_cross_cls|box|ld = s·weight·D(cross_k,
    teacher)``. Only for heads whose towers are plain ``cls_convs`` / ``reg_convs``
    (``CROSS_HEAD_NAMES``) with equal channels at ``layer``; refused at build otherwise.

    ``predict`` returns, per image, mmdet's ``DetDataSample`` with ``pred_instances`` of
    ``predict_on`` and ``model_preds`` holding every model's and the ensemble's detections
    (rescaled to the original image), for ``DetIoUMetric``. The ensemble pools the students'
    detections and keeps the highest-scoring ones by class-wise NMS (``ensemble='nms'``), or
    fuses them (``ensemble='wbf'``).

    Args:
        students (list[dict | str]): K ≥ 1 detector configs: dicts, config files,
            ``'mmdet::...'`` paths, or ``dict(base=<path>, **overrides)``.
        teacher (dict | str, optional): Teacher detector config. Defaults to None.
        teacher_mode (str): 'online' or 'offline'. Defaults to 'online'.
        teacher_ckpt (str, optional): Teacher checkpoint. Defaults to None.
        det_weight (float): Weight of each student's own detection loss. Defaults to 1.0.
        kd_weight (float): β. Defaults to 0.45.
        ml_weight (float): γ; 0 disables mutual learning. Defaults to 0.45.
        temperature (float): Temperature of the classification KD. Defaults to 1.0.
        box_l1_weight (float): λ₁ of the box KD. Defaults to 5.0.
        box_giou_weight (float): λ_g of the box KD. Defaults to 2.0.
        ld_weight (float): Weight of LD for GFL heads. Defaults to 0.25.
        ld_temperature (float): LD temperature. Defaults to 10.0.
        box_region (str): Where boxes (and LD) are distilled: 'auto', 'positive',
            'confident', 'topk' or 'all' (see above). Defaults to 'auto'.
        box_region_thr (float): Target confidence threshold of 'confident'. Defaults to 0.5.
        box_region_topk (int): Locations per image of 'topk'. Defaults to 9.
        feature_kd (dict, optional): ``dict(type='pkd' | 'cwd', weight=1.0,
            levels=(0, …), level_weights=(1.0, …), tau=1.0 (CWD), peers=False)``.
            Defaults to None (off; also with ``weight=0``).
        cross_kd (dict, optional): ``dict(layer=stacked_convs − 1, weight=1.0)``: the tower
            layer whose student features enter the teacher's head. Defaults to None (off;
            also with ``weight=0``).
        ensemble (str): 'nms' or 'wbf'. Defaults to 'nms'.
        ensemble_iou_thr (float): IoU threshold of the ensemble. Defaults to 0.5.
        predict_on (str): 'ensemble', 'teacher' or 'student{k}'. Defaults to 'ensemble'.
        data_preprocessor (dict, optional): mmdet ``DetDataPreprocessor`` config, run once
            for every model. Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 students: List[ModelCfg],
                 teacher: Optional[ModelCfg] = None,
                 teacher_mode: str = 'online',
                 teacher_ckpt: Optional[str] = None,
                 det_weight: float = 1.0,
                 kd_weight: float = 0.45,
                 ml_weight: float = 0.45,
                 temperature: float = 1.0,
                 box_l1_weight: float = 5.0,
                 box_giou_weight: float = 2.0,
                 ld_weight: float = 0.25,
                 ld_temperature: float = 10.0,
                 box_region: str = 'auto',
                 box_region_thr: float = 0.5,
                 box_region_topk: int = 9,
                 feature_kd: Optional[dict] = None,
                 cross_kd: Optional[dict] = None,
                 ensemble: str = 'nms',
                 ensemble_iou_thr: float = 0.5,
                 predict_on: str = 'ensemble',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        check_model_settings(
            temperatures=dict(temperature=temperature, ld_temperature=ld_temperature),
            weights=dict(det_weight=det_weight, kd_weight=kd_weight, ml_weight=ml_weight,
                         box_l1_weight=box_l1_weight, box_giou_weight=box_giou_weight,
                         ld_weight=ld_weight))
        # Resolved and checked before anything is built, so that an unsupported head fails
        # at once, not after datasets and hooks were built or at the first training step.
        students = [resolve_model_cfg(s, f'model.students[{k}]')
                    for k, s in enumerate(students)]
        teacher = None if teacher is None else resolve_model_cfg(teacher, 'model.teacher')
        for key, cfg in [('model.teacher', teacher)] + [
                (f'model.students[{k}]', s) for k, s in enumerate(students)]:
            if cfg is not None:
                check_mmkd_prefixes(cfg, key)
                check_detector_cfg(cfg, key)
        super().__init__(students, teacher, teacher_mode, teacher_ckpt, predict_on,
                         data_preprocessor, init_cfg)
        self.check_mutual_learning(ml_weight)
        if ensemble not in ('nms', 'wbf'):
            raise ValueError(f"model.ensemble must be 'nms' or 'wbf', got {ensemble!r}")
        check_box_region(box_region, box_region_thr, box_region_topk)
        check_head_geometry(self.named_models())
        box_region = resolve_box_region(box_region, box_region_thr,
                                        [s.bbox_head for s in self.students])
        for det in self.named_models().values():
            # mmdet 3.3's SSDHead never sets loss_cls, which its own predict path reads
            # (BaseDenseHead._predict_by_feat_single): without this, SSD cannot predict.
            if not hasattr(det.bbox_head, 'loss_cls'):
                det.bbox_head.loss_cls = None
        self.det_weight, self.kd_weight, self.ml_weight = det_weight, kd_weight, ml_weight
        self.temperature, self.ld_weight, self.ld_temperature = (temperature, ld_weight,
                                                                 ld_temperature)
        self.box_weights = (box_l1_weight, box_giou_weight)
        self.box_region, self.box_region_thr = box_region, box_region_thr
        self.box_region_topk = int(box_region_topk)
        self.ensemble, self.ensemble_iou_thr = ensemble, ensemble_iou_thr
        self.feature_kd = det_feature_kd_settings(
            feature_kd, self.students[0].bbox_head.prior_generator.num_levels,
            self.teacher is not None, self.num_students)
        self.adapters = build_adapters(
            {name: level_channels(det.bbox_head) for name, det in self.named_models().items()},
            self.feature_kd) if self.feature_kd is not None else nn.ModuleDict()
        self.cross_kd = det_cross_kd_settings(
            cross_kd, None if self.teacher is None else self.teacher.bbox_head,
            [s.bbox_head for s in self.students])

    def trainable_models(self) -> Dict[str, nn.Module]:
        """As the base class's, with each student's feature adapters (if any) listed with
        the student: ``{'student{k}': ModuleDict(detector=…, adapters=…)}``, so that the
        per-model optimiser of student k trains them."""
        models = super().trainable_models()
        for name, adapters in self.adapters.items():
            models[name] = nn.ModuleDict(dict(detector=models[name], adapters=adapters))
        return models

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return {name: det._forward(inputs) for name, det in self.named_models().items()}
        raise RuntimeError(f'Invalid mode "{mode}": use "loss", "predict" or "tensor"')

    @staticmethod
    def _run(det, inputs: Tensor) -> tuple:
        """One forward of a detector: its raw head outputs and their dense decoded view."""
        outs = det.bbox_head(det.extract_feat(inputs))
        return outs, dense_predictions(det.bbox_head, outs)

    @staticmethod
    def _run_with_features(det, inputs: Tensor, layer: Optional[int] = None) -> tuple:
        """:meth:`_run` that also returns what feature and cross-head KD need: ``(FPN
        features, the head's tower features at layer (None: not needed), raw head outputs,
        dense decoded view)``."""
        feats = det.extract_feat(inputs)
        if layer is None:
            tower, outs = None, det.bbox_head(feats)
        else:  # the same outputs, with the tower features at ``layer`` kept on the way
            tower = tower_features(det.bbox_head, feats, layer)
            outs = head_from_layer(det.bbox_head, tower, layer)
        return feats, tower, outs, dense_predictions(det.bbox_head, outs)

    @staticmethod
    def box_scale(inputs: Tensor) -> Tensor:
        """``[w, h, w, h]`` of the padded batch ``inputs`` (B, C, h, w), filled on its device
        (no host copy): the box terms compare boxes divided by it."""
        h, w = inputs.shape[-2:]
        scale = inputs.new_full((4, ), float(w))
        scale[1::2] = h
        return scale

    def loss(self, inputs: Tensor, data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        gt_instances, gt_ignore, img_metas = unpack_gt_instances(data_samples)
        scale = self.box_scale(inputs)
        losses, dense, positives, feats, towers = {}, {}, {}, {}, {}
        with_features = self.feature_kd is not None or self.cross_kd is not None
        for name, det in self.named_models().items():
            layer = None if name == 'teacher' or self.cross_kd is None else self.cross_kd['layer']
            with torch.no_grad() if name == 'teacher' and self.offline else nullcontext():
                if with_features:
                    feats[name], towers[name], outs, dense[name] = self._run_with_features(
                        det, inputs, layer)
                else:
                    outs, dense[name] = self._run(det, inputs)
            if name == 'teacher' and self.offline:
                continue
            # A student's positives are read from its own assignment as its loss makes it.
            record = (record_positives(det.bbox_head, len(data_samples))
                      if name != 'teacher' and self.box_region == 'positive' else nullcontext())
            with record as found:
                det_losses = det.bbox_head.loss_by_feat(*outs, gt_instances, img_metas,
                                                        gt_ignore)
            if found is not None:
                positives[name] = found.mask
            weight = 1.0 if name == 'teacher' else self.det_weight
            losses.update(self.prefixed(name, self._scaled(det_losses, weight)))
        students = [f'student{k}' for k in range(self.num_students)]
        kd_weight = self.distill_factor * self.kd_weight
        ml_weight = self.distill_factor * self.ml_weight
        for name in students:
            region = positives.get(name)
            if self.teacher is not None and self.kd_weight > 0:
                losses.update(self._distil(name, 'kd', dense[name], [dense['teacher']],
                                           kd_weight, scale, region))
            if self.ml_weight > 0:
                peers = [dense[p] for p in students if p != name]
                losses.update(self._distil(name, 'ml', dense[name], peers, ml_weight, scale,
                                           region))
            if self.feature_kd is not None:
                losses.update(self._distil_features(name, feats, students))
            if self.cross_kd is not None:
                # The student's tower features through the teacher's head, whose parameters
                # enter detached: the gradient reaches the student only.
                layer, head = self.cross_kd['layer'], self.teacher.bbox_head
                cross = dense_predictions(
                    head, head_from_layer(head, towers[name], layer, frozen=True))
                losses.update(self._distil(name, 'cross', cross, [dense['teacher']],
                                           self.distill_factor * self.cross_kd['weight'],
                                           scale, region))
        return losses

    def _distil_features(self, name: str, feats: Dict[str, tuple],
                         students: List[str]) -> Dict[str, Tensor]:
        """``student{k}.loss_kd_feat`` (teacher) and ``student{k}.loss_ml_feat`` (mean over
        peers): ``s·weight·Σ_l w_l·F(A(f_k,l), f_target,l)``, targets detached by F."""
        settings, own = self.feature_kd, self.adapters[name] if name in self.adapters else {}

        def term(target: str) -> Tensor:
            total = 0
            for i, (level, level_weight) in enumerate(zip(settings.levels,
                                                          settings.level_weights)):
                student = feats[name][level]
                if target in own:
                    student = own[target][i](student)
                if settings.type == 'pkd':
                    value = pkd_loss(student, feats[target][level])
                else:
                    value = cwd_loss(student, feats[target][level], settings.tau)
                total = total + level_weight * value
            return total

        weight, out = self.distill_factor * settings.weight, {}
        if self.teacher is not None:
            out[f'{name}.loss_kd_feat'] = weight * term('teacher')
        peers = [p for p in students if p != name] if settings.peers else []
        if peers:
            out[f'{name}.loss_ml_feat'] = weight * sum(term(p) for p in peers) / len(peers)
        return out

    @staticmethod
    def _scaled(losses: dict, weight: float) -> dict:
        if weight == 1.0:
            return losses
        # mmdet heads return a tensor or a list of per-level tensors per key
        return {k: [x * weight for x in v] if isinstance(v, list) else v * weight
                for k, v in losses.items()}

    def box_weights_of(self, target: DensePredictions,
                       positives: Optional[Tensor] = None) -> Tensor:
        """(B, N) weights of the box and LD terms: the target's confidence
        ``max_c p_τ(c)`` inside the region ``box_region`` selects, 0 elsewhere.

        Args:
            target (DensePredictions): The target detector's predictions.
            positives (Tensor, optional): (B, N) bool, the student's positive locations
                (needed by ``box_region='positive'``).
        """
        confidence = target.class_probs().detach().max(-1).values
        if self.box_region == 'all':
            return confidence
        if self.box_region == 'positive':
            if positives is None:
                raise RuntimeError("box_region='positive' needs the student's positives")
            region = positives
        elif self.box_region == 'confident':
            region = confidence >= self.box_region_thr
        else:  # 'topk'
            k = min(self.box_region_topk, confidence.shape[1])
            region = torch.zeros_like(confidence, dtype=torch.bool).scatter_(
                1, confidence.topk(k, dim=1).indices, True)
        return confidence * region

    def _distil(self, name: str, kind: str, student: DensePredictions,
                targets: List[DensePredictions], weight: float, scale: Tensor,
                positives: Optional[Tensor] = None) -> dict:
        """``weight/len(targets) · Σ_targets D(student, target)``, one key per term."""
        terms = {'cls': [], 'box': [], 'ld': []}
        s_cls = student.cls_logits.flatten(0, 1)
        s_box = (student.boxes / scale).flatten(0, 1)
        # Sigmoid heads: per-class binary KL; softmax heads (SSD): KL over C + background.
        cls_kd = sigmoid_kd_loss if student.use_sigmoid else kd_kl_div_loss
        for target in targets:
            t_cls = target.cls_logits.flatten(0, 1)
            box_weight = self.box_weights_of(target, positives).flatten(0, 1)
            # Normalised by the weight mass averaged over DDP ranks (mmdet's reduce_mean
            # convention), so that the gradient does not depend on how a batch is split;
            # a batch without any location in the region gives 0 (clamped denominator).
            avg = reduce_mean(box_weight.sum())
            terms['cls'].append(cls_kd(s_cls, t_cls, self.temperature))
            terms['box'].append(box_kd_loss(s_box, (target.boxes / scale).flatten(0, 1),
                                            box_weight, *self.box_weights, avg_factor=avg))
            if student.dists is not None and self.ld_weight > 0:
                terms['ld'].append(self.ld_weight * ld_kd_loss(
                    student.dists.flatten(0, 1), target.dists.flatten(0, 1), box_weight,
                    self.ld_temperature, avg_factor=avg))
        return {f'{name}.loss_{kind}_{term}': weight * sum(values) / len(values)
                for term, values in terms.items() if values}

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        per_model = {name: [s.pred_instances for s in det.predict(inputs, data_samples,
                                                                   rescale=rescale)]
                     for name, det in self.named_models().items()}
        return attach_detections(data_samples, per_model, self.predict_on, self.num_students,
                                 self.ensemble, self.ensemble_iou_thr)
