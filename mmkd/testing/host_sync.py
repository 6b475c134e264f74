"""Find, on any device, the calls that copy between host and GPU or wait for the GPU.

On a GPU a training step should queue its kernels and never wait: each ``.item()``, ``.cpu()``,
``bool(tensor)``, ``nonzero`` (its output size lives on the device), boolean-mask indexing or
tensor made from host data (``torch.tensor(list, device=...)``, ``x.new_tensor(list)``)
blocks the Python thread until the GPU has caught up. ``torch.cuda.set_sync_debug_mode`` finds them, but only on a GPU.
:class:`HostSyncCounter` finds the same calls on the CPU, as a ``TorchFunctionMode`` that sees
every torch call of the code it wraps, and names the file and line outside torch that made it::

    with HostSyncCounter() as syncs:
        model.train_step(data, optim_wrapper)
    syncs.by_package()  # {'mmdet': {...}, 'mmkd': {}}
"""
import collections
import os.path as osp
import sys
from typing import Dict, Tuple

import torch
from torch.overrides import TorchFunctionMode

# Tensor methods / torch functions that read device memory on the host (a sync on CUDA).
_READS = {'item', 'tolist', 'numpy', 'cpu', '__bool__', '__float__', '__int__', '__index__',
          '__len__', 'nonzero', 'argwhere', 'unique', 'unique_consecutive', 'masked_select',
          'repeat_interleave'}
# Tensors made from host data: a host-to-device copy once moved to the GPU.
_FROM_HOST = {'tensor', 'as_tensor', 'from_numpy'}
_TORCH_DIR = osp.dirname(torch.__file__) + osp.sep
_PACKAGES = ('mmkd', 'mmdet', 'mmengine', 'mmcv', 'torchvision', 'numpy')


def _is_bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index, )
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _device_of(args, kwargs):
    """The device a ``Tensor.to`` / ``.cuda`` call names, or None (a dtype-only cast)."""
    for value in (*args, kwargs.get('device'), kwargs.get('other')):
        if isinstance(value, torch.device):
            return value
        if isinstance(value, str) and not value.startswith('torch.'):
            return torch.device(value)
        if isinstance(value, torch.Tensor):
            return value.device
    return None


def _kind(func, args, kwargs) -> str:
    """The kind of host/device traffic ``func(*args, **kwargs)`` makes, or '' for none."""
    name = getattr(func, '__name__', '')
    if name in _READS:
        if name == '__len__':
            return ''  # shape metadata, not device memory
        if name == 'repeat_interleave' and kwargs.get('output_size') is not None:
            return ''
        return name
    if name in ('__getitem__', '__setitem__') and len(args) > 1 and _is_bool_index(args[1]):
        return f'{name}[bool mask]'
    if name == 'where' and len(args) + len(kwargs) == 1:
        return 'where(cond)'
    if name in _FROM_HOST and args and not isinstance(args[0], torch.Tensor):
        return f'{name}(host data)'
    if name == 'new_tensor' and len(args) > 1 and not isinstance(args[1], torch.Tensor):
        return 'new_tensor(host data)'  # on the GPU: a blocking copy from pageable memory
    if name in ('to', 'cuda') and args and isinstance(args[0], torch.Tensor):
        device = torch.device('cuda') if name == 'cuda' else _device_of(args[1:], kwargs)
        # another device, or the host named outright (a no-op only while the run is on CPU)
        if device is not None and (device.type != args[0].device.type
                                   or 'cpu' in (*args[1:2], kwargs.get('device'))):
            return f'{name}({device.type})'
    return ''


def _caller() -> Tuple[str, str]:
    """(package, 'path:line') of the innermost frame outside torch and this module."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename.startswith(_TORCH_DIR)
                                 or frame.f_code.co_filename == __file__):
        frame = frame.f_back
    if frame is None:
        return 'torch', '?'
    path = frame.f_code.co_filename
    parts = path.replace('\\', '/').split('/')
    package = next((p for p in reversed(parts[:-1]) if p in _PACKAGES), 'other')
    if package in parts:
        path = '/'.join(parts[len(parts) - 1 - parts[::-1].index(package):])
    return package, f'{path}:{frame.f_lineno}'


class _IndexProbe(TorchFunctionMode):

    def __init__(self):
        super().__init__()
        self.seen = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen |= getattr(func, '__name__', '') == '__getitem__'
        return func(*args, **(kwargs or {}))


def _modes_see_indexing() -> bool:
    """Whether torch function modes see ``Tensor.__getitem__`` (torch 2.1 skips them)."""
    with _IndexProbe() as probe:
        torch.zeros(1)[0]
    return probe.seen


class HostSyncCounter(TorchFunctionMode):
    """Count the calls that, on a GPU, copy between host and device or wait for the device.

    ``calls`` maps ``(kind, 'file:line')`` to a count; ``package_of`` maps each place to its
    package (``mmkd``, ``mmdet``, ``mmengine``, ``mmcv``, ...; ``other`` for tests and
    scripts). A device move to the same device, a dtype cast and a tensor made from a tensor
    are not counted.
    """

    _sees_indexing = None

    def __init__(self):
        super().__init__()
        self.calls: Dict[Tuple[str, str], int] = collections.Counter()
        self.package_of: Dict[str, str] = {}
        self._unpatch = []

    def _record(self, kind: str) -> None:
        package, where = _caller()
        self.calls[(kind, where)] += 1
        self.package_of[where] = package

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = _kind(func, args, kwargs)
        if kind:
            self._record(kind)
        return func(*args, **kwargs)

    def _watch_indexing(self) -> None:
        """torch 2.1: indexing bypasses function modes, so wrap it for the mode's life."""
        for name in ('__getitem__', '__setitem__'):
            original = getattr(torch.Tensor, name)

            def wrapped(tensor, index, *rest, _original=original, _name=name):
                if _is_bool_index(index):
                    self._record(f'{_name}[bool mask]')
                return _original(tensor, index, *rest)

            self._unpatch.append((name, vars(torch.Tensor).get(name)))
            setattr(torch.Tensor, name, wrapped)

    def __enter__(self):
        if HostSyncCounter._sees_indexing is None:
            HostSyncCounter._sees_indexing = _modes_see_indexing()
        if not HostSyncCounter._sees_indexing:
            self._watch_indexing()
        return super().__enter__()

    def __exit__(self, *exc):
        while self._unpatch:
            name, own = self._unpatch.pop()
            if own is None:  # inherited from the C base class: uncover it again
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, own)
        return super().__exit__(*exc)

    def by_package(self) -> Dict[str, Dict[Tuple[str, str], int]]:
        """``{package: {(kind, 'file:line'): count}}``."""
        grouped: Dict[str, Dict[Tuple[str, str], int]] = collections.defaultdict(dict)
        for (kind, where), count in self.calls.items():
            grouped[self.package_of[where]][(kind, where)] = count
        return dict(grouped)

    def report(self) -> str:
        lines = []
        for package, calls in sorted(self.by_package().items()):
            for (kind, where), count in sorted(calls.items(), key=lambda kv: kv[0][1]):
                lines.append(f'{package:9s} {count:4d} x {kind:22s} {where}')
        return '\n'.join(lines)
