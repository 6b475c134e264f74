from .per_model_optim_wrapper_constructor import PerModelOptimWrapperConstructor

__all__ = ['PerModelOptimWrapperConstructor']
