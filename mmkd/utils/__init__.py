"""What mmkd's tools share: run set-up (config, launcher, work dir, pretrained weights, AMP,
test flags) and the checks at a run's start. The checkpoint and export names are re-exported
from :mod:`mmkd.checkpoint` and :mod:`mmkd.export`, where they live."""
from mmkd.checkpoint import (CHECKPOINT_SAFE_GLOBALS, AtomicLocalBackend, RefusedCheckpointError,
                             install_checkpoint_load_errors, register_atomic_local_backend,
                             register_checkpoint_safe_globals)
from mmkd.export import export_notes, export_students
from .launch import (add_run_arguments, load_run_config, resolve_model, set_data_root,
                     setup_launcher)
from .metric_table import format_metric_table
from .pretrained import from_scratch, pretrained_files
from .setup_env import register_all_modules

__all__ = [
    'add_run_arguments', 'load_run_config',
    'AtomicLocalBackend', 'CHECKPOINT_SAFE_GLOBALS', 'RefusedCheckpointError',
    'export_notes', 'export_students', 'format_metric_table', 'from_scratch', 'pretrained_files', 'install_checkpoint_load_errors',
    'register_all_modules', 'register_atomic_local_backend', 'register_checkpoint_safe_globals',
    'resolve_model', 'set_data_root', 'setup_launcher'
]
