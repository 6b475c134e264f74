from .det_iou_metric import DetIoUMetric
from .dump_model_predictions import DumpModelPredictions
from .multi_model_cls_metric import MultiModelClsMetric

__all__ = ['DetIoUMetric', 'DumpModelPredictions', 'MultiModelClsMetric']
