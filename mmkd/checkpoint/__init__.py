"""Checkpoints mmkd writes and loads: atomic writes with a SHA-256 digest beside each file,
the ``weights_only`` allow-list every load goes through, and the strict load of evaluation.

``import mmkd`` registers the ``atomic_local`` file backend and the checked loader."""
from .allowlist import (CHECKPOINT_SAFE_GLOBALS, RefusedCheckpointError,
                        install_checkpoint_load_errors, register_checkpoint_safe_globals,
                        safe_torch_load)
from .atomic_local_backend import AtomicLocalBackend, register_atomic_local_backend
from .digest import CheckpointDigestError, MalformedDigestError, verify_checkpoint
from .strict_load import load_checkpoint_strictly, state_dict_mismatches

__all__ = [
    'AtomicLocalBackend', 'CHECKPOINT_SAFE_GLOBALS', 'CheckpointDigestError',
    'MalformedDigestError', 'RefusedCheckpointError', 'install_checkpoint_load_errors',
    'load_checkpoint_strictly', 'register_atomic_local_backend',
    'register_checkpoint_safe_globals', 'safe_torch_load', 'state_dict_mismatches',
    'verify_checkpoint'
]
