from .multi_model_cls_metric import MultiModelClsMetric

__all__ = ['MultiModelClsMetric']
