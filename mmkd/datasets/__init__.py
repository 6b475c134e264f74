import mmdet.datasets  # noqa: F401  (parent registries do not run their locations imports)

from .cifar100_dataset import CIFAR100Dataset, load_cifar_pickle
from .fashion_mnist_dataset import FashionMNISTDataset, load_fashion_mnist, read_idx
from .kvasir_seg_dataset import KvasirSegDataset
from .msi_tile_dataset import MSITileDataset
from .transforms import LoadImageChecked

__all__ = [
    'CIFAR100Dataset', 'FashionMNISTDataset', 'KvasirSegDataset', 'LoadImageChecked',
    'MSITileDataset', 'load_cifar_pickle', 'load_fashion_mnist', 'read_idx'
]
