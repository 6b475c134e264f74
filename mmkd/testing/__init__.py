from .cifar_format import write_cifar100
from .msi_format import write_msi_tiles

__all__ = ['write_cifar100', 'write_msi_tiles']
