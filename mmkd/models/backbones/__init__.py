from .cifar_pre_act_resnet import CIFARPreActResNet
from .cifar_resnet import CIFARResNet

__all__ = ['CIFARResNet', 'CIFARPreActResNet']
