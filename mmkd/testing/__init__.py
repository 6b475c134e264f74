from .cifar_format import write_cifar100

__all__ = ['write_cifar100']
