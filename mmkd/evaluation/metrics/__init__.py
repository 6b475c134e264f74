from .det_iou_metric import DetIoUMetric
from .multi_model_cls_metric import MultiModelClsMetric

__all__ = ['DetIoUMetric', 'MultiModelClsMetric']
