"""IDX files (the MNIST / Fashion-MNIST format) and small Fashion-MNIST-like sets, for tests."""
import gzip
import os
import os.path as osp
from typing import Dict

import numpy as np

# numpy dtype -> IDX type byte (the format's table).
_IDX_TYPES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic ``0x00 0x00 <type> <ndim>``, ``ndim`` big-endian
    uint32 sizes, then the row-major big-endian data."""
    array = np.asarray(array)
    if array.dtype not in _IDX_TYPES:
        raise ValueError(f'IDX has no type for {array.dtype}; use one of '
                         f'{sorted(str(d) for d in _IDX_TYPES)}')
    head = bytes([0, 0, _IDX_TYPES[array.dtype], array.ndim])
    dims = np.asarray(array.shape, '>u4').tobytes()
    return head + dims + np.ascontiguousarray(array, array.dtype.newbyteorder('>')).tobytes()


def write_idx(path: str, array: np.ndarray) -> str:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends with ``.gz`` (as
    the Debian package ships Fashion-MNIST; mtime 0, so the bytes are reproducible) and plain
    otherwise. Returns ``path``."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    data = idx_bytes(array)
    with (gzip.GzipFile(path, 'wb', mtime=0) if path.endswith('.gz') else open(path, 'wb')) as f:
        f.write(data)
    return path


def fashion_like_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 28, 28) images on a 0 background: a bright rectangle whose width and height
    depend on the class (class ``c``: ``8 + c`` wide, ``20 - c`` high), shifted at random by
    up to 2 px, with noise inside; every image has pixels of 255, as Fashion-MNIST's."""
    images = np.zeros((len(labels), 28, 28), np.uint8)
    for i, c in enumerate(labels):
        w, h = 8 + int(c), 20 - int(c)
        y0 = (28 - h) // 2 + int(rng.integers(-2, 3))
        x0 = (28 - w) // 2 + int(rng.integers(-2, 3))
        images[i, y0:y0 + h, x0:x0 + w] = rng.integers(120, 256, size=(h, w))
        images[i, y0, x0] = 255
    return images


def write_fashion_mnist(root: str, num_train: int = 40, num_test: int = 20, seed: int = 0,
                        compress: bool = True) -> Dict[str, str]:
    """Write ``root/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` in the real IDX
    format: ``fashion_like_images`` with labels ``i % 10`` (balanced). Returns
    ``{file stem: path}``."""
    rng = np.random.default_rng(seed)
    paths = {}
    for prefix, num in (('train', num_train), ('t10k', num_test)):
        labels = (np.arange(num) % 10).astype(np.uint8)
        arrays = {f'{prefix}-images-idx3-ubyte': fashion_like_images(labels, rng),
                  f'{prefix}-labels-idx1-ubyte': labels}
        for stem, array in arrays.items():
            paths[stem] = write_idx(osp.join(root, stem + ('.gz' if compress else '')), array)
    return paths
