"""ResNet / ResNeXt for 32x32 inputs, returning every stage's feature map."""
from typing import Dict, List, Optional, Tuple, Type, Union

import torch.nn as nn
from torch import Tensor

from mmkd.registry import MODELS
from ..utils.kaiming_init_module import KaimingInitModule


def conv3x3(in_channels: int,
            out_channels: int,
            stride: int = 1,
            groups: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BN follows)."""
    return nn.Conv2d(
        in_channels, out_channels, 3, stride, 1, groups=groups, bias=False)


class BasicBlock(nn.Module):
    """Post-activation basic block, as in torchvision.

    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x))``.

    Args:
        in_channels (int): Input channels.
        planes (int): Output channels (``expansion`` is 1).
        stride (int): Stride of ``conv1``. Defaults to 1.
        downsample (nn.Module, optional): Projection of ``x`` when the shape
            changes. Defaults to None.
    """

    expansion = 1

    def __init__(self,
                 in_channels: int,
                 planes: int,
                 stride: int = 1,
                 downsample: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """Post-activation bottleneck (stride on the 3x3 conv, as in torchvision).

    Args:
        in_channels (int): Input channels.
        planes (int): Base width; the block outputs ``planes * 4`` channels.
        stride (int): Stride of ``conv2``. Defaults to 1.
        downsample (nn.Module, optional): Projection of ``x`` when the shape
            changes. Defaults to None.
        groups (int): Groups of ``conv2`` (ResNeXt cardinality). Defaults to 1.
        width_per_group (int): Channels per group at ``planes=64``; ``conv2``
            has ``int(planes * width_per_group / 64) * groups`` channels.
            Defaults to 64.
    """

    expansion = 4

    def __init__(self,
                 in_channels: int,
                 planes: int,
                 stride: int = 1,
                 downsample: Optional[nn.Module] = None,
                 groups: int = 1,
                 width_per_group: int = 64) -> None:
        super().__init__()
        width = int(planes * width_per_group / 64) * groups
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = Type[Union[BasicBlock, Bottleneck]]


@MODELS.register_module()
class CIFARResNet(KaimingInitModule):
    """ResNet / ResNeXt for CIFAR, cut into stages for multi-exit networks.

    The backbone of BYOT (`Be Your Own Teacher
    <https://arxiv.org/abs/1905.08094>`_) and of paper A: a 3x3 stride-1
    stem without max-pool, then standard post-activation stages with strides
    1, 2, 2, 2. For a 32x32 input, stage ``i`` (1-based) gives a map of
    ``32 / 2**(i - 1)`` pixels a side. Module names follow torchvision
    (``conv1``, ``bn1``, ``layer1`` ...), so reference checkpoints load.

    Args:
        depth (int): 18 or 34 (basic blocks [2, 2, 2, 2], [3, 4, 6, 3]),
            50 or 101 (bottlenecks [3, 4, 6, 3], [3, 4, 23, 3]).
        groups (int): ResNeXt cardinality, bottleneck depths only; ResNeXt-50
            32x4d is ``depth=50, groups=32, width_per_group=4``. Defaults to 1.
        width_per_group (int): Bottleneck channels per group at the
            64-channel stage, bottleneck depths only. Defaults to 64.
        num_stages (int): Build and return only the first N of the 4 stages.
            Defaults to 4.
        base_channels (int): Stem width; stage ``i`` has ``base_channels *
            2**(i - 1)`` planes (times 4 for bottlenecks). Defaults to 64.
        init_cfg (dict or list[dict], optional): Initialization config. When
            None, ``init_weights`` applies Kaiming-normal (fan_out, ReLU) to
            convs and weight 1, bias 0 to BN. Defaults to None.

    Attributes:
        out_channels (list[int]): Channels of the N stage outputs, e.g.
            ``[64, 128, 256, 512]`` for ResNet-18 and ``[256, 512, 1024,
            2048]`` for ResNet-50.
    """

    arch_settings: Dict[int, Tuple[Block, Tuple[int, ...]]] = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
    }

    def __init__(self,
                 depth: int,
                 groups: int = 1,
                 width_per_group: int = 64,
                 num_stages: int = 4,
                 base_channels: int = 64,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        self._check_args(depth, groups, width_per_group, num_stages,
                         base_channels)
        block, stage_blocks = self.arch_settings[depth]
        block_kwargs = dict(groups=groups, width_per_group=width_per_group) \
            if block is Bottleneck else {}
        self.conv1 = conv3x3(3, base_channels)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels: List[int] = []
        in_channels = base_channels
        for i, num_blocks in enumerate(stage_blocks[:num_stages]):
            planes = base_channels * 2**i
            stage = self._make_stage(block, in_channels, planes, num_blocks,
                                     1 if i == 0 else 2, block_kwargs)
            self.add_module(f'layer{i + 1}', stage)
            in_channels = planes * block.expansion
            self.out_channels.append(in_channels)

    @classmethod
    def _check_args(cls, depth: int, groups: int, width_per_group: int,
                    num_stages: int, base_channels: int) -> None:
        if depth not in cls.arch_settings:
            raise ValueError(f'depth must be one of '
                             f'{sorted(cls.arch_settings)}, got {depth!r}')
        if num_stages not in (1, 2, 3, 4):
            raise ValueError(
                f'num_stages must be 1, 2, 3 or 4, got {num_stages!r}')
        if base_channels < 1:
            raise ValueError(
                f'base_channels must be a positive int, got {base_channels}')
        if cls.arch_settings[depth][0] is BasicBlock:
            if (groups, width_per_group) != (1, 64):
                raise ValueError(
                    f'groups and width_per_group apply to bottleneck depths '
                    f'(50, 101) only; depth {depth} needs groups=1 and '
                    f'width_per_group=64, got {groups} and {width_per_group}')
        elif int(base_channels * width_per_group / 64) < 1:
            raise ValueError(
                f'base_channels * width_per_group / 64 must be >= 1 so that '
                f'every group has a channel, got base_channels='
                f'{base_channels}, width_per_group={width_per_group}; raise '
                f'base_channels')

    @staticmethod
    def _make_stage(block: Block, in_channels: int, planes: int,
                    num_blocks: int, stride: int,
                    block_kwargs: dict) -> nn.Sequential:
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))
        layers = [
            block(in_channels, planes, stride, downsample, **block_kwargs)
        ]
        layers += [
            block(out_channels, planes, **block_kwargs)
            for _ in range(1, num_blocks)
        ]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Run the stem and the N stages.

        Args:
            x (Tensor): Images of shape (B, 3, H, W).

        Returns:
            tuple[Tensor]: N maps; map ``i`` (0-based) has shape
            (B, out_channels[i], H / 2**i, W / 2**i).
        """
        x = self.relu(self.bn1(self.conv1(x)))
        outs = []
        for i in range(len(self.out_channels)):
            x = getattr(self, f'layer{i + 1}')(x)
            outs.append(x)
        return tuple(outs)
