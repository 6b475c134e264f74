from .pskd_memory import PSKDMemory

__all__ = ['PSKDMemory']
