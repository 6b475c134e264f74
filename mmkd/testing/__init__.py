from .cifar_format import write_cifar100
from .coco_format import write_coco_boxes
from .kvasir_format import write_kvasir_seg, write_split_files
from .msi_format import write_msi_tiles
from .tiny_detectors import tiny_detector

__all__ = [
    'tiny_detector', 'write_cifar100', 'write_coco_boxes', 'write_kvasir_seg',
    'write_msi_tiles', 'write_split_files'
]
