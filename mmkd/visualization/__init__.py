import mmdet.visualization  # noqa: F401  (parent registries do not import)

from .det_comparison import draw_detection_comparison

__all__ = ['draw_detection_comparison']
