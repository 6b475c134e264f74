from .cifar_format import write_cifar100
from .tiny_detectors import tiny_detector
from .msi_format import write_msi_tiles

__all__ = ['tiny_detector', 'write_cifar100', 'write_msi_tiles']
