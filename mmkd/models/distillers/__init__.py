from .base_kdml_distiller import BaseKDMLDistiller, build_model_cfg
from .kdml_distiller import KDMLDistiller
from .multi_exit_distiller import MultiExitDistiller

__all__ = ['BaseKDMLDistiller', 'KDMLDistiller', 'MultiExitDistiller', 'build_model_cfg']
