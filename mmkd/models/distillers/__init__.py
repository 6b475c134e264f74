from .base_kdml_distiller import BaseKDMLDistiller, build_model_cfg, resolve_model_cfg
from .det_kdml_distiller import DetKDMLDistiller
from .kdml_distiller import KDMLDistiller
from .multi_exit_distiller import MultiExitDistiller

__all__ = [
    'BaseKDMLDistiller', 'DetKDMLDistiller', 'KDMLDistiller', 'MultiExitDistiller',
    'build_model_cfg', 'resolve_model_cfg'
]
