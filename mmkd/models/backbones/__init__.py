from .cifar_pre_act_resnet import CIFARPreActResNet
from .cifar_resnet import CIFARResNet
from .torchvision_backbone import TorchvisionBackbone

__all__ = ['CIFARResNet', 'CIFARPreActResNet', 'TorchvisionBackbone']
