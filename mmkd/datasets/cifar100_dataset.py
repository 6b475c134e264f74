import os.path as osp
import pickle
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mmkd.registry import DATASETS

# Names a CIFAR pickle may reference: numpy arrays and their dtype (numpy 1.x and 2.x paths).
_ALLOWED_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('numpy.core.numeric', '_frombuffer'), ('numpy._core.numeric', '_frombuffer'),  # protocol 5
    ('_codecs', 'encode'),  # how Python 3 writes bytes at pickle protocol 2
    ('__builtin__', 'bytes'), ('builtins', 'bytes'),  # ... and empty bytes (an empty array)
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that builds only containers, strings, numbers and numpy arrays."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'{module}.{name} is not allowed in a CIFAR pickle')


def load_cifar_pickle(path: str) -> dict:
    """Read one CIFAR python pickle (``encoding='latin1'``: str keys) with clear errors."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found: unpack cifar-100-python.tar.gz so that '
                                'data_root contains cifar-100-python/{train,test,meta} '
                                '(see data/README.md)')
    try:
        with open(path, 'rb') as f:
            content = _ArrayUnpickler(f, encoding='latin1').load()
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError) as e:
        raise ValueError(f'{path} is not a readable CIFAR pickle (truncated or corrupt: '
                         f'{type(e).__name__}: {e}); download and unpack it again') from e
    if not isinstance(content, dict):
        raise ValueError(f'{path} holds a {type(content).__name__}, expected a dict')
    return content


@DATASETS.register_module()
class CIFAR100Dataset(Dataset):
    """CIFAR-100 read from the real python pickles ``cifar-100-python/{train,test,meta}``.

    Each item is ``dict(inputs=uint8 Tensor (3, 32, 32), data_samples=dict(gt_label=int,
    sample_idx=int))``; collate with ``default_collate`` and augment/normalise in
    ``ClsDataPreprocessor`` (batch-level, vectorised). ``sample_idx`` is the dataset index
    that PS-KD's memory is keyed by.

    Args:
        data_root (str): Folder that contains ``cifar-100-python/``.
        split (str): ``'train'`` or ``'test'``. Defaults to 'train'.
        label_key (str): ``'fine_labels'`` (100 classes) or ``'coarse_labels'`` (20).
            Defaults to 'fine_labels'.
    """

    def __init__(self, data_root: str, split: str = 'train', label_key: str = 'fine_labels'):
        if split not in ('train', 'test'):
            raise ValueError(f"dataset.split must be 'train' or 'test', got {split!r}")
        folder = osp.join(data_root, 'cifar-100-python')
        path = osp.join(folder, split)
        content = load_cifar_pickle(path)
        meta = load_cifar_pickle(osp.join(folder, 'meta'))
        names_key = 'fine_label_names' if label_key == 'fine_labels' else 'coarse_label_names'
        for key, src in ((label_key, path), ('data', path)):
            if key not in content:
                raise ValueError(f'{src} has no {key!r} entry (keys: {sorted(content)})')
        if names_key not in meta:
            raise ValueError(f'{osp.join(folder, "meta")} has no {names_key!r} entry')
        self.classes: Sequence[str] = tuple(meta[names_key])
        self.images = self._images(content['data'], path)
        self.labels = self._labels(content[label_key], len(self.images), path)

    @staticmethod
    def _images(data, path: str) -> np.ndarray:
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f'{path}: data must be uint8 of shape (N, 3072), got '
                             f'{data.dtype} {data.shape}')
        if len(data) == 0:
            raise ValueError(f'{path} holds no images (data has 0 rows): the split is empty; '
                             'download and unpack cifar-100-python again')
        # Each row is 1024 R, 1024 G, 1024 B values, every plane row-major 32x32.
        return np.ascontiguousarray(data.reshape(-1, 3, 32, 32))

    def _labels(self, labels, num_images: int, path: str) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (num_images, ):
            raise ValueError(f'{path}: {labels.shape[0]} labels for {num_images} images')
        bad = np.flatnonzero((labels < 0) | (labels >= len(self.classes)))
        if bad.size:
            raise ValueError(f'{path}: sample {bad[0]} has label {labels[bad[0]]} outside '
                             f'[0, {len(self.classes)}) ({bad.size} such samples)')
        return labels

    @property
    def metainfo(self) -> dict:
        return dict(classes=self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int) -> dict:
        return dict(inputs=torch.from_numpy(self.images[idx]),
                    data_samples=dict(gt_label=int(self.labels[idx]), sample_idx=idx))
