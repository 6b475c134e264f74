from .det_comparison_hook import DetComparisonHook
from .num_classes_check_hook import NumClassesCheckHook
from .progress_bar_hook import ProgressBarHook
from .pskd_memory_hook import PSKDMemoryHook

__all__ = ['DetComparisonHook', 'NumClassesCheckHook', 'PSKDMemoryHook', 'ProgressBarHook']
