from .det_comparison_hook import DetComparisonHook
from .pskd_memory_hook import PSKDMemoryHook

__all__ = ['DetComparisonHook', 'PSKDMemoryHook']
