"""PS-KD's pre-activation ResNet for 32x32 inputs, returning every stage."""
from typing import List, Optional, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS


class PreActBlock(nn.Module):
    """Pre-activation basic block of PS-KD (``models/preact_resnet.py``).

    ``a = relu(bn1(x))``; returns ``conv2(relu(bn2(conv1(a)))) + shortcut(a)``.
    The shortcut is a 1x1 conv (stride ``stride``, no bias, no BN) when the
    shape changes, else the identity.

    Args:
        in_channels (int): Input channels.
        planes (int): Output channels.
        stride (int): Stride of ``conv1`` and of the shortcut. Defaults to 1.
    """

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        # An empty Sequential for the identity keeps PS-KD's state-dict keys.
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, planes, 1, stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        # PS-KD feeds the pre-activated input to the identity shortcut too
        # (He et al. 2016 add x itself); kept for parity with its numbers.
        shortcut = self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


@MODELS.register_module()
class CIFARPreActResNet(BaseModule):
    """Pre-activation ResNet for CIFAR, as in PS-KD, cut into stages.

    PS-KD's "ResNet-18" (`Self-Knowledge Distillation with Progressive
    Refinement of Targets <https://arxiv.org/abs/2006.12000>`_,
    ``CIFAR_ResNet18_preActBasic``): a stem ``conv3x3 -> BN -> ReLU`` without
    max-pool, then :class:`PreActBlock` stages with strides 1, 2, 2, 2. The
    last stage ends with the residual sum: there is no final BN or ReLU, so
    its output can be negative. Weights keep PyTorch's default
    initialization, as in PS-KD. For a 32x32 input, stage ``i`` (1-based)
    gives a map of ``32 / 2**(i - 1)`` pixels a side.

    Args:
        depth (int): 18 (blocks [2, 2, 2, 2]) or 34 ([3, 4, 6, 3]).
        num_stages (int): Build and return only the first N of the 4 stages.
            Defaults to 4.
        base_channels (int): Stem width; stage ``i`` has ``base_channels *
            2**(i - 1)`` channels. Defaults to 64.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.

    Attributes:
        out_channels (list[int]): Channels of the N stage outputs, e.g.
            ``[64, 128, 256, 512]`` for depth 18.
    """

    arch_settings = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

    def __init__(self,
                 depth: int,
                 num_stages: int = 4,
                 base_channels: int = 64,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        if depth not in self.arch_settings:
            raise ValueError(f'depth must be one of '
                             f'{sorted(self.arch_settings)}, got {depth!r}')
        if num_stages not in (1, 2, 3, 4):
            raise ValueError(
                f'num_stages must be 1, 2, 3 or 4, got {num_stages!r}')
        if base_channels < 1:
            raise ValueError(
                f'base_channels must be a positive int, got {base_channels}')
        self.conv1 = nn.Conv2d(3, base_channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.out_channels: List[int] = []
        in_channels = base_channels
        for i, num_blocks in enumerate(self.arch_settings[depth][:num_stages]):
            planes = base_channels * 2**i
            strides = [1 if i == 0 else 2] + [1] * (num_blocks - 1)
            blocks = []
            for stride in strides:
                blocks.append(PreActBlock(in_channels, planes, stride))
                in_channels = planes
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
            self.out_channels.append(planes)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Run the stem and the N stages.

        Args:
            x (Tensor): Images of shape (B, 3, H, W).

        Returns:
            tuple[Tensor]: N maps; map ``i`` (0-based) has shape
            (B, out_channels[i], H / 2**i, W / 2**i).
        """
        x = F.relu(self.bn1(self.conv1(x)))
        outs = []
        for i in range(len(self.out_channels)):
            x = getattr(self, f'layer{i + 1}')(x)
            outs.append(x)
        return tuple(outs)
