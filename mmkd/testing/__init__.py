from mmkd.datasets.synthetic_scenes import write_split_files

from .cifar_format import write_cifar100
from .coco_format import write_coco_boxes
from .idx_format import idx_bytes, write_fashion_mnist, write_idx
from .kvasir_format import write_kvasir_seg
from .msi_format import write_msi_tiles
from .scratch_config import scratch_config
from .tiny_detectors import tiny_det_batch, tiny_det_distiller, tiny_detector

__all__ = [
    'idx_bytes', 'scratch_config', 'tiny_det_batch', 'tiny_det_distiller', 'tiny_detector',
    'write_cifar100', 'write_coco_boxes', 'write_fashion_mnist', 'write_idx', 'write_kvasir_seg',
    'write_msi_tiles', 'write_split_files'
]
