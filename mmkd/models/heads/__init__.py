from .exit_head import ExitHead

__all__ = ['ExitHead']
