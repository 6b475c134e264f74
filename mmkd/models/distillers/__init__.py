from .multi_exit_distiller import MultiExitDistiller

__all__ = ['MultiExitDistiller']
