import gzip
import os.path as osp
import zlib
from typing import Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from mmkd.registry import DATASETS

DEFAULT_DATA_ROOT = '/usr/share/datasets/fashion-mnist/'
INSTALL_HINT = ('install the Debian package (apt-get update && apt-get install -y '
                'dataset-fashion-mnist, which puts the four files in '
                f'{DEFAULT_DATA_ROOT}) or point dataset.data_root / --data-root at a folder '
                'that holds them')
# IDX type byte -> big-endian numpy dtype (the format's table).
IDX_DTYPES = {0x08: '>u1', 0x09: '>i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}
IMAGES_MAGIC = 0x00000803  # uint8, 3 dims (N, rows, cols)
LABELS_MAGIC = 0x00000801  # uint8, 1 dim (N, )
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')


def _read(f, num: int, path: str) -> bytes:
    """Up to ``num`` bytes of ``f``; a broken gzip stream is an error naming ``path``."""
    try:
        return f.read(num)
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f'{path} is a corrupt or truncated gzip file ({type(e).__name__}: '
                         f'{e}); {INSTALL_HINT}') from e


def _read_exactly(f, num: int, path: str, what: str) -> bytes:
    data = _read(f, num, path)
    if len(data) < num:
        raise ValueError(f'{path} is truncated: its {what} needs {num} bytes but only '
                         f'{len(data)} are there; {INSTALL_HINT}')
    return data


def read_idx(path: str, magic: Optional[int] = None) -> np.ndarray:
    """Read one IDX file (the MNIST / Fashion-MNIST format), gzipped or not.

    The header is 4 magic bytes ``0x00 0x00 <type> <ndim>`` and ``ndim`` big-endian uint32
    sizes, followed by the row-major big-endian data (type 0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64). Gzip is recognised by its content
    (bytes ``1f 8b``), not by the file name.

    Args:
        path (str): The file.
        magic (int, optional): The magic number the file must have, e.g. ``0x00000803``
            (uint8 images, 3 dims); None accepts any valid IDX type. Defaults to None.

    Returns:
        np.ndarray: The array, native byte order, shape given by the header.

    Raises:
        ValueError: wrong magic number, a header or data shorter than the header says
            (truncated), bytes after the data, or a corrupt gzip stream; the message names
            ``path``.
    """
    with open(path, 'rb') as raw:
        compressed = raw.read(2) == b'\x1f\x8b'
    with (gzip.open(path, 'rb') if compressed else open(path, 'rb')) as f:
        head = _read_exactly(f, 4, path, 'IDX magic number')
        found = int.from_bytes(head, 'big')
        if head[:2] != b'\0\0' or head[2] not in IDX_DTYPES or head[3] == 0 or (
                magic is not None and found != magic):
            expected = f'0x{magic:08x}' if magic is not None else \
                '0x0000TTNN (TT an IDX type byte, NN >= 1 dims)'
            raise ValueError(f'{path} has magic number 0x{found:08x}, expected {expected}: '
                             f'it is not the IDX file it should be; {INSTALL_HINT}')
        ndim = head[3]
        shape = tuple(int(d) for d in np.frombuffer(
            _read_exactly(f, 4 * ndim, path, f'header of {ndim} dimension sizes'), '>u4'))
        dtype = np.dtype(IDX_DTYPES[head[2]])
        num = int(np.prod(shape)) * dtype.itemsize
        data = _read_exactly(f, num, path, f'data of shape {shape} ({dtype.name})')
        if _read(f, 1, path):
            raise ValueError(f'{path} has bytes after the {num} data bytes that its header '
                             f'{shape} describes: it is not a valid IDX file; {INSTALL_HINT}')
    return np.frombuffer(data, dtype).astype(dtype.newbyteorder('='), copy=True).reshape(shape)


def find_idx_file(data_root: str, name: str) -> str:
    """``data_root/name`` if it exists, else ``data_root/name.gz``; a clear error if neither."""
    candidates = [osp.join(data_root, name), osp.join(data_root, name + '.gz')]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'Fashion-MNIST file {name} not found: looked for {candidates[0]} '
                            f'and {candidates[1]}; {INSTALL_HINT}')


def load_fashion_mnist(data_root: str, test_mode: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Images and labels of one Fashion-MNIST split, checked against each other.

    Args:
        data_root (str): Folder with ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.
        test_mode (bool): The ``t10k`` (test) files instead of ``train``. Defaults to False.

    Returns:
        tuple: ``images`` uint8 (N, 28, 28) (background 0) and ``labels`` int64 (N, ) in
        ``[0, 10)``.
    """
    prefix = 't10k' if test_mode else 'train'
    img_path = find_idx_file(data_root, f'{prefix}-images-idx3-ubyte')
    label_path = find_idx_file(data_root, f'{prefix}-labels-idx1-ubyte')
    images = read_idx(img_path, IMAGES_MAGIC)
    labels = read_idx(label_path, LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f'{img_path} holds {len(images)} images but {label_path} holds '
                         f'{len(labels)} labels: the two files are not one split; '
                         f'{INSTALL_HINT}')
    if len(images) == 0:
        raise ValueError(f'{img_path} holds no images; {INSTALL_HINT}')
    if images.shape[1:] != (28, 28):
        # the transforms and every config's input size assume 28x28 (32x32 once padded)
        raise ValueError(f'{img_path} holds {images.shape[1]}x{images.shape[2]} images, not '
                         f'Fashion-MNIST\'s 28x28: it is another IDX set; {INSTALL_HINT}')
    bad = np.flatnonzero(labels >= len(FASHION_MNIST_CLASSES))
    if bad.size:
        raise ValueError(f'{label_path}: sample {bad[0]} has label {labels[bad[0]]} outside '
                         f'[0, {len(FASHION_MNIST_CLASSES)}) ({bad.size} such samples)')
    return images, labels


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a seeded class-balanced subset of ``size`` samples, ascending.

    The samples are shuffled with ``numpy.random.default_rng(seed)``, and taken round-robin
    over the classes in that order (every class's 1st sample, then every class's 2nd, ...),
    so class counts differ by at most one while every class has samples left. A smaller
    ``size`` with the same seed gives a subset of a larger one.

    Args:
        labels (np.ndarray): Labels of shape (N, ).
        size (int): Subset size, in ``[1, N]``.
        seed (int): Seed of the shuffle.

    Returns:
        np.ndarray: int64 indices into ``labels`` of shape (size, ), sorted.
    """
    perm = np.random.default_rng(seed).permutation(len(labels))
    shuffled = labels[perm]
    order = np.argsort(shuffled, kind='stable')
    grouped = shuffled[order]
    rank = np.empty(len(labels), np.int64)  # k for the k-th sample of its class in perm
    rank[order] = np.arange(len(labels)) - np.searchsorted(grouped, grouped, 'left')
    take = np.lexsort((np.arange(len(labels)), rank))[:size]
    return np.sort(perm[take])


@DATASETS.register_module()
class FashionMNISTDataset(Dataset):
    """Fashion-MNIST read from the real IDX files (Zalando, 60,000 train / 10,000 test).

    Reads ``{train,t10k}-images-idx3-ubyte`` and ``-labels-idx1-ubyte`` from ``data_root``,
    each gzipped (``.gz``, as the Debian package ``dataset-fashion-mnist`` installs them) or
    not. Items are those of ``CIFAR100Dataset``: ``dict(inputs=uint8 Tensor (3, S, S),
    data_samples=dict(gt_label=int, sample_idx=int))`` with ``S = 28 + 2 * pad``, so the same
    ``default_collate``, ``ClsDataPreprocessor``, CIFAR backbones and ``MultiModelClsMetric``
    run on it. ``sample_idx`` is the index into this dataset, 0..len-1 also with a subset
    (PS-KD's memory has ``len(dataset)`` rows); ``source_indices[sample_idx]`` is the row in
    the IDX file.

    **Grey to CIFAR shape.** Every backbone's stem and ``ClsDataPreprocessor`` (3-value
    mean/std) take 3 channels, so the grey plane is repeated 3 times. The images are stored
    once as (N, 1, S, S) and each item is a zero-copy ``expand`` to 3 channels: loading
    costs one pad, an item is a view, and collation, augmentation and normalisation stay the
    batch-level vectorised ones. ``pad=2`` zero-pads 28x28 to 32x32 (Fashion-MNIST's
    background is 0, so the border is background): the CIFAR networks then see CIFAR's
    spatial sizes and the preprocessor's ``RandomCrop(32, padding=4)`` is CIFAR's. Pixel
    statistics of the train split in 0-255 units, for ``data_preprocessor.mean``/``std``
    (the same value for the 3 channels): with ``pad=2`` mean 55.84, std 84.61; with
    ``pad=0`` mean 72.94, std 90.02.

    **Subset.** ``subset_size`` keeps a seeded class-balanced subset (see
    ``stratified_subset``; deterministic for a given ``subset_seed``, file order kept).

    Args:
        data_root (str): Folder of the IDX files. Defaults to
            ``'/usr/share/datasets/fashion-mnist/'`` (the Debian package's).
        test_mode (bool): Read the ``t10k`` (test) files instead of ``train``.
            Defaults to False.
        pad (int): Zero pixels added on each side; 2 gives 32x32, 0 keeps 28x28.
            Defaults to 2.
        subset_size (int, optional): Keep this many samples; None keeps all.
            Defaults to None.
        subset_seed (int): Seed of the subset. Defaults to 0.
    """

    METAINFO = dict(classes=FASHION_MNIST_CLASSES)

    def __init__(self,
                 data_root: str = DEFAULT_DATA_ROOT,
                 test_mode: bool = False,
                 pad: int = 2,
                 subset_size: Optional[int] = None,
                 subset_seed: int = 0):
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ValueError(f'dataset.pad must be a non-negative int, got {pad!r}')
        images, labels = load_fashion_mnist(data_root, test_mode)
        self.source_indices = np.arange(len(labels))
        if subset_size is not None:
            if isinstance(subset_size, bool) or not isinstance(subset_size, int) or not (
                    1 <= subset_size <= len(labels)):
                split = 't10k' if test_mode else 'train'
                raise ValueError(f'dataset.subset_size must be an int in [1, {len(labels)}] '
                                 f'(the size of the {split} split in {data_root}), got '
                                 f'{subset_size!r}; None keeps every sample')
            self.source_indices = stratified_subset(labels, subset_size, subset_seed)
            images, labels = images[self.source_indices], labels[self.source_indices]
        self.test_mode = test_mode
        self.classes = FASHION_MNIST_CLASSES
        self.labels = labels
        self.images = np.pad(images[:, None], ((0, 0), (0, 0), (pad, pad), (pad, pad)))

    @property
    def metainfo(self) -> dict:
        return dict(classes=self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int) -> dict:
        image = torch.from_numpy(self.images[idx])
        return dict(inputs=image.expand(3, *image.shape[1:]),
                    data_samples=dict(gt_label=int(self.labels[idx]), sample_idx=idx))
