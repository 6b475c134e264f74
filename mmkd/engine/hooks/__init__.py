from .pskd_memory_hook import PSKDMemoryHook

__all__ = ['PSKDMemoryHook']
