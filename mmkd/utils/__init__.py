from .checkpoint_allowlist import (CHECKPOINT_SAFE_GLOBALS,
                                   register_checkpoint_safe_globals)
from .export import export_students
from .launch import resolve_model, set_data_root, setup_launcher
from .metric_table import format_metric_table
from .setup_env import register_all_modules

__all__ = [
    'CHECKPOINT_SAFE_GLOBALS', 'export_students', 'format_metric_table', 'register_all_modules',
    'register_checkpoint_safe_globals', 'resolve_model', 'set_data_root', 'setup_launcher'
]
