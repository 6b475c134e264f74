from .multi_model_det_tta_model import MultiModelDetTTAModel

__all__ = ['MultiModelDetTTAModel']
