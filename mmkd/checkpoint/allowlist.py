"""Allow-list that lets ``torch.load(weights_only=True)`` open mmengine checkpoints, and the
same refusal of everything else on every torch mmkd supports.

torch >= 2.6 loads with ``weights_only=True`` by default and mmengine 0.10.7 does not pass
the argument, so ``resume`` fails on every checkpoint mmengine writes; torch < 2.6 unpickles
in full by default, so a checkpoint could run code. mmkd loads every local checkpoint itself
(:func:`safe_torch_load`, registered as mmengine's loader of local files): on torch >= 2.4 with
``weights_only=True`` and this allow-list added to torch's, on older torch (2.1–2.3, whose
weights-only unpickler cannot rebuild numpy arrays or other objects) with a restricted
unpickler that admits torch's own weights-only globals plus this allow-list and nothing else.
Instead of switching ``weights_only`` off, the exact types that mmengine's checkpoints hold
beside tensors are allowed:

* ``message_hub``: ``HistoryBuffer`` objects, whose state names their statistics methods
  through ``getattr(HistoryBuffer, 'min')`` etc. Only that use of ``getattr`` is allowed;
* numpy arrays, scalars and their dtypes (log buffers, ``meta['seed']``);
* ``collections.Counter`` (``MultiStepLR.milestones`` in the scheduler state).

Anything else is refused by torch. :func:`install_checkpoint_load_errors` makes that refusal,
and a truncated file, an error that names the file and the refused global, in every path that
opens a checkpoint through mmengine (``Runner.resume``/``load_checkpoint``, ``load_from``,
``mmengine.runner.load_checkpoint``, ``init_cfg=dict(type='Pretrained')``, offline teachers,
the export tool). The same paths first check a local file against the digest saved with it
(``digest.py``).
"""
import _codecs
import collections
import importlib
import os.path as osp
import pickle
import re
import types

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .digest import verify_checkpoint


_BUILTIN_STATISTICS = {'min', 'max', 'current', 'mean'}


def _history_buffer_getattr(owner, name):
    """Stand-in for ``builtins.getattr`` while unpickling: statistics methods only."""
    allowed = _BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'the checkpoint calls getattr({owner!r}, {name!r}); only HistoryBuffer statistics '
        'methods are allowed (mmkd.checkpoint.allowlist)')


def _numpy_globals():
    # numpy >= 2 has numpy._core; numpy 1.26 has a numpy._core shim without multiarray.
    numpy2 = int(np.__version__.split('.')[0]) >= 2
    core = importlib.import_module('numpy._core.multiarray' if numpy2 else 'numpy.core.multiarray')
    # numpy 1.x pickles an array's bytes as _codecs.encode(str, 'latin1') (torch >= 2.4
    # allows it too): a str-to-bytes conversion, nothing else.
    items = [np.ndarray, np.dtype, (_codecs.encode, '_codecs.encode')]
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


# torch >= 2.4 extends its weights-only unpickler with add_safe_globals.
NATIVE_ALLOWLIST = hasattr(torch.serialization, 'add_safe_globals')


def register_checkpoint_safe_globals() -> None:
    """Add :data:`CHECKPOINT_SAFE_GLOBALS` to torch's ``weights_only`` allow-list (torch >= 2.4;
    older torch loads through :data:`restricted_pickle` instead)."""
    if NATIVE_ALLOWLIST:
        torch.serialization.add_safe_globals(CHECKPOINT_SAFE_GLOBALS)


def _allowed_by_name() -> dict:
    """``'module.name'`` → object of every global a checkpoint may hold: torch's own
    weights-only globals (tensors, storages, dtypes, ``OrderedDict``, ...) and ours."""
    from torch._weights_only_unpickler import _get_allowed_globals
    allowed = dict(_get_allowed_globals())
    for item in CHECKPOINT_SAFE_GLOBALS:
        obj, name = item if isinstance(item, tuple) else (item, None)
        allowed[name or f'{obj.__module__}.{obj.__qualname__}'] = obj
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the allowed globals (the restricted-unpickler
    pattern of Python's ``pickle`` documentation); torch adds its storages on top."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._allowed = _allowed_by_name()  # once per load, not once per global

    def find_class(self, module, name):
        obj = self._allowed.get(f'{module}.{name}')
        if obj is None:
            raise pickle.UnpicklingError(
                f'Weights only load failed: unsupported GLOBAL {module}.{name} '
                f'({__name__})')
        return obj


def _restricted_load(file, **kwargs):
    return _RestrictedUnpickler(file, **kwargs).load()


# A pickle module for torch.load(pickle_module=...): Unpickler and load, restricted.
restricted_pickle = types.SimpleNamespace(__name__='mmkd_restricted_pickle',
                                          Unpickler=_RestrictedUnpickler, load=_restricted_load)


def safe_torch_load(file, map_location=None):
    """``torch.load`` that refuses anything outside the allow-list, on every torch:
    ``weights_only=True`` with :data:`CHECKPOINT_SAFE_GLOBALS` registered (torch >= 2.4), or
    the restricted unpickler (torch 2.1–2.3)."""
    if NATIVE_ALLOWLIST:
        return torch.load(file, map_location=map_location, weights_only=True)
    return torch.load(file, map_location=map_location, weights_only=False,
                      pickle_module=restricted_pickle)


def _load_from_local(filename, map_location):
    """mmengine's loader of local checkpoint files, with :func:`safe_torch_load`."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


class RefusedCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the ``weights_only`` allow-list."""


def _unpickler_complaint(message: str) -> str:
    """What torch's weights-only unpickler objected to, out of its long message."""
    found = re.search(r'GLOBAL (\S+)', message)
    if found:
        return found.group(1)
    found = re.search(r'WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)',
                      message, re.S)
    return found.group(1) if found and found.group(1) else message.strip()


def _explain_load_error(filename: str, error: Exception) -> Exception:
    text = str(error)
    # A refusal names a global (torch) or comes from the getattr guard above; anything else
    # the unpickler chokes on (an unknown opcode, a cut-off stream) is a damaged file.
    if 'GLOBAL ' in text or __name__ in text:
        return RefusedCheckpointError(
            f'checkpoint {filename} was not loaded: it holds a pickled object outside the '
            f'allow-list ({_unpickler_complaint(text)}). Unpickling it could run code from '
            'the file, so mmkd keeps torch.load(weights_only=True) and refuses it '
            '(mmkd/checkpoint/allowlist.py lists what mmengine checkpoints may hold). '
            'If you trust where the file comes from, load it once by hand and save only its '
            'tensors (e.g. its state_dict) to a new file.')
    detail = _unpickler_complaint(text) or f'{type(error).__name__}: the file ends too early'
    return RuntimeError(
        f'checkpoint {filename} was not loaded: it is truncated, corrupt or not a PyTorch '
        f'checkpoint ({detail}). A process killed while writing leaves such a file: use an '
        'earlier checkpoint.')


def install_checkpoint_load_errors() -> None:
    """Wrap ``mmengine.runner.CheckpointLoader.load_checkpoint`` (through which every mmengine
    checkpoint load goes, whatever the scheme) so that a local file is checked against its
    digest first, loaded by :func:`safe_torch_load`, and a refused pickle or a truncated file
    is re-raised with the file name. Installing twice wraps once."""
    original = CheckpointLoader.load_checkpoint.__func__
    if getattr(original, '_mmkd_wrapped', False):
        return
    # Local files: loaded with the allow-list whatever torch's default (torch < 2.6 would
    # unpickle them in full).
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)

    def load_checkpoint(cls, filename, map_location=None, logger='current'):
        verify_checkpoint(filename)
        try:
            return original(cls, filename, map_location, logger)
        except (pickle.UnpicklingError, EOFError) as e:
            raise _explain_load_error(filename, e) from e
        except RuntimeError as e:
            # torch's own text for a cut-off zip archive names no file.
            if 'PytorchStreamReader' not in str(e):
                raise
            raise _explain_load_error(filename, e) from e

    load_checkpoint._mmkd_wrapped = True
    load_checkpoint.__doc__ = original.__doc__
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)
