"""What the detection distillers' ``predict`` returns: every model's detections and the
students' ensemble (:func:`~.box_ensemble.batch_ensemble`), attached to mmdet's samples for
``DetIoUMetric``."""
from typing import Dict, List

from mmdet.structures import DetDataSample

from .box_ensemble import batch_ensemble


def attach_detections(data_samples: List[DetDataSample], per_model: Dict[str, list],
                      predict_on: str, num_students: int, method: str = 'nms',
                      iou_thr: float = 0.5) -> List[DetDataSample]:
    """Add the students' ensemble to ``per_model`` (name → per-image ``InstanceData``), then
    give every sample ``model_preds`` (all of them) and ``pred_instances`` (``predict_on``)."""
    per_model['ensemble'] = batch_ensemble(
        [per_model[f'student{k}'] for k in range(num_students)], method=method,
        iou_thr=iou_thr)
    for i, sample in enumerate(data_samples):
        sample.pred_instances = per_model[predict_on][i]
        sample.model_preds = {name: preds[i] for name, preds in per_model.items()}
    return data_samples
