from .base_kdml_distiller import BaseKDMLDistiller, build_model_cfg, resolve_model_cfg
from .det_kdml_distiller import DetKDMLDistiller
from .kdml_distiller import KDMLDistiller
from .multi_exit_distiller import MultiExitDistiller
from .single_box_kdml_distiller import SingleBoxKDMLDistiller

__all__ = [
    'BaseKDMLDistiller', 'DetKDMLDistiller', 'KDMLDistiller', 'MultiExitDistiller',
    'SingleBoxKDMLDistiller', 'build_model_cfg', 'resolve_model_cfg'
]
