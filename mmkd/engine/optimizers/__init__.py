from .autocast_optim_wrapper import AutocastOptimWrapper
from .per_model_optim_wrapper_constructor import PerModelOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'PerModelOptimWrapperConstructor']
