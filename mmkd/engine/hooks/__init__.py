from .det_comparison_hook import DetComparisonHook
from .distill_schedule_hook import DistillScheduleHook, distill_ramp
from .num_classes_check_hook import NumClassesCheckHook
from .progress_bar_hook import ProgressBarHook
from .pskd_memory_hook import PSKDMemoryHook

__all__ = [
    'DetComparisonHook', 'DistillScheduleHook', 'NumClassesCheckHook', 'PSKDMemoryHook',
    'ProgressBarHook', 'distill_ramp'
]
