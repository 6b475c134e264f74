"""Allow-list that lets ``torch.load(weights_only=True)`` open mmengine checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default and mmengine 0.10.7 does not pass
the argument, so ``resume`` fails on every checkpoint mmengine writes. Instead of switching
``weights_only`` off (which would let a checkpoint run arbitrary code), the exact types that
mmengine's checkpoints hold beside tensors are allowed:

* ``message_hub``: ``HistoryBuffer`` objects, whose state names their statistics methods
  through ``getattr(HistoryBuffer, 'min')`` etc. Only that use of ``getattr`` is allowed;
* numpy arrays, scalars and their dtypes (log buffers, ``meta['seed']``);
* ``collections.Counter`` (``MultiStepLR.milestones`` in the scheduler state).
"""
import collections
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


_BUILTIN_STATISTICS = {'min', 'max', 'current', 'mean'}


def _history_buffer_getattr(owner, name):
    """Stand-in for ``builtins.getattr`` while unpickling: statistics methods only."""
    allowed = _BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'the checkpoint calls getattr({owner!r}, {name!r}); only HistoryBuffer statistics '
        'methods are allowed (mmkd.utils.checkpoint_allowlist)')


def _numpy_globals():
    core = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    items = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(core, name)
        # numpy 1.x writes numpy.core.*, numpy 2.x numpy._core.*: accept both spellings.
        items += [(fn, f'numpy.core.multiarray.{name}'), (fn, f'numpy._core.multiarray.{name}')]
    items += sorted({type(np.dtype(c)) for c in np.typecodes['All'] if c not in 'Mm'} - {np.dtype},
                    key=str)
    return items


CHECKPOINT_SAFE_GLOBALS = [
    HistoryBuffer,
    collections.Counter,
    (_history_buffer_getattr, 'builtins.getattr'),
    (_history_buffer_getattr, '__builtin__.getattr'),
] + _numpy_globals()


def register_checkpoint_safe_globals() -> None:
    """Add :data:`CHECKPOINT_SAFE_GLOBALS` to torch's ``weights_only`` allow-list."""
    torch.serialization.add_safe_globals(CHECKPOINT_SAFE_GLOBALS)
