"""One classifier exit of a multi-exit network (BYOT)."""
from typing import List, Optional, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from ..utils.kaiming_init_module import KaimingInitModule


class SepConv(nn.Module):
    """Two depthwise-separable 3x3 convs, the BYOT journal code's ``SepConv``.

    ``dw3x3(stride) -> pw1x1 -> BN -> ReLU -> dw3x3 -> pw1x1 -> BN -> ReLU``,
    convs without bias.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first depthwise conv. Defaults to 2.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 2) -> None:
        super().__init__()
        c = in_channels
        self.op = nn.Sequential(
            nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
            nn.Conv2d(c, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class SepConvAttention(nn.Module):
    """BYOT journal attention: ``x * sigmoid(up(relu(bn(SepConv_s2(x)))))``.

    Args:
        channels (int): Channels of the input and of the mask.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = SepConv(channels, channels, stride=2)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        mask = self.relu(self.bn(self.conv(x)))
        # The reference upsamples x2; resizing to x's size equals that on
        # even sizes and still lines up when a side is odd.
        mask = F.interpolate(
            mask, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return x * mask.sigmoid()


def conv_bn_relu(in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1) -> List[nn.Module]:
    """Conv (stride = kernel size, with bias, as in BYOT) -> BN -> ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, kernel_size),
        nn.BatchNorm2d(out_channels),
        nn.ReLU()
    ]


def bottleneck_branch(in_channels: int, feat_channels: int,
                      stride: int) -> nn.Sequential:
    """BYOT conference branch ``branchBottleNeck``: 1x1, kxk stride k, 1x1."""
    mid = feat_channels // 4
    return nn.Sequential(*conv_bn_relu(in_channels, mid),
                         *conv_bn_relu(mid, mid, stride),
                         *conv_bn_relu(mid, feat_channels))


def patch_gemm_bottleneck(branch: nn.Sequential, x: Tensor, stride: int) -> Tensor:
    """``branch(x)`` of a :func:`bottleneck_branch`, computed as three matrix products.

    The kxk stride-k conv reads disjoint k x k patches, so with the map laid out patch by
    patch (rows ``(b, i, j, di, dj)``, columns the channels) the 1x1 conv is one GEMM, the
    kxk conv a GEMM over rows of ``k·k·C/4`` and the last 1x1 a third; each BN sees the same
    per-channel batch statistics as on the map (over ``(N, C, 1, 1)`` views), so values,
    gradients and running statistics are those of the modules. Measured on 2 CPU cores
    (ResNet-18, batch 128, exit 1: 64 x 32 x 32, k = 8) it takes 0.63x the time of the
    modules, whose 8x8 stride-8 convolution mkldnn runs far below its GEMM speed; for k <= 4
    the modules are faster (``ExitHead.patch_gemm_min_stride``).

    Args:
        branch (nn.Sequential): The modules of :func:`bottleneck_branch`.
        x (Tensor): Stage map (B, C, H, W), H and W multiples of ``stride``.
        stride (int): The branch's k.

    Returns:
        Tensor: (B, C_N, H / k, W / k), a view with channels-last strides.
    """
    conv1, bn1, _, conv2, bn2, _, conv3, bn3, _ = branch  # ReLUs applied in place below
    b, c, height, width = x.shape
    h, w, k, mid = height // stride, width // stride, stride, conv1.out_channels
    rows = x.reshape(b, c, h, k, w, k).permute(0, 2, 4, 3, 5, 1).reshape(-1, c)
    y = F.linear(rows, conv1.weight.flatten(1), conv1.bias)
    y = F.relu_(bn1(y[:, :, None, None])).reshape(b * h * w, k * k * mid)
    # kxk weights (out, in, di, dj) in the rows' (di, dj, in) order
    y = F.linear(y, conv2.weight.permute(0, 2, 3, 1).reshape(mid, -1), conv2.bias)
    y = F.relu_(bn2(y[:, :, None, None])).flatten(1)
    y = F.linear(y, conv3.weight.flatten(1), conv3.bias)
    y = F.relu_(bn3(y[:, :, None, None]))
    return y.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def attention_sepconv_branch(in_channels: int, feat_channels: int,
                             stride: int) -> nn.Sequential:
    """BYOT journal branch: attention, then one stride-2 SepConv per octave."""
    layers: List[nn.Module] = [SepConvAttention(in_channels)]
    channels = in_channels
    for _ in range(stride.bit_length() - 1):
        layers.append(SepConv(channels, channels * 2, stride=2))
        channels *= 2
    if channels != feat_channels:
        layers += conv_bn_relu(channels, feat_channels)
    return nn.Sequential(*layers)


@MODELS.register_module()
class ExitHead(KaimingInitModule):
    """Classifier exit attached to one backbone stage (BYOT).

    `Be Your Own Teacher <https://arxiv.org/abs/1905.08094>`_ attaches an exit
    to every stage. A branch brings stage ``i``'s map to the deepest stage's
    channels and size; ``pooled_feat = feat_map.mean((2, 3))`` is the feature
    of the BYOT hint loss and ``logits = fc(pooled_feat)``.

    Branches:

    * ``'bottleneck'`` (BYOT conference code, paper A ResNet-18/50):
      ``1x1 (C_i -> C_N/4) -> kxk stride k -> 1x1 (-> C_N)``, each conv with
      bias and followed by BN and ReLU.
    * ``'attention_sepconv'`` (BYOT journal code, paper A ResNeXt-50):
      :class:`SepConvAttention`, then ``log2(k)`` stride-2 :class:`SepConv`
      that each double the channels, then a 1x1 conv, BN and ReLU to ``C_N``
      only if ``C_i * k != C_N``.
    * ``'none'`` (the deepest exit): the stage map itself.

    Args:
        in_channels (int): Channels ``C_i`` of the stage map.
        feat_channels (int): Channels ``C_N`` of the deepest stage map.
        stride (int): Total downsampling ``k`` between this stage and the
            deepest one, e.g. ``2**(N - i)`` for stage ``i`` of N; 1 for the
            deepest exit.
        num_classes (int): Number of classes.
        branch (str): ``'bottleneck'``, ``'attention_sepconv'`` or ``'none'``.
            Defaults to ``'bottleneck'``.
        init_cfg (dict or list[dict], optional): Initialization config. When
            None, ``init_weights`` applies Kaiming-normal (fan_out, ReLU) to
            convs and weight 1, bias 0 to BN, as both BYOT codes do; ``fc``
            keeps PyTorch's default. Defaults to None.
    """

    branches = ('bottleneck', 'attention_sepconv', 'none')
    # On the CPU, bottleneck branches of at least this stride run as patch GEMMs
    # (patch_gemm_bottleneck): faster there, slower for the smaller strides; on other devices
    # (not measured) the modules run. 0 turns the GEMM path off.
    patch_gemm_min_stride = 8

    def __init__(self,
                 in_channels: int,
                 feat_channels: int,
                 stride: int,
                 num_classes: int,
                 branch: str = 'bottleneck',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        self._check_args(in_channels, feat_channels, stride, branch)
        self.branch_type = branch
        self.stride = stride
        if branch == 'bottleneck':
            self.branch = bottleneck_branch(in_channels, feat_channels, stride)
        elif branch == 'attention_sepconv':
            self.branch = attention_sepconv_branch(in_channels, feat_channels,
                                                   stride)
        else:
            self.branch = nn.Identity()
        self.fc = nn.Linear(feat_channels, num_classes)

    @classmethod
    def _check_args(cls, in_channels: int, feat_channels: int, stride: int,
                    branch: str) -> None:
        if branch not in cls.branches:
            raise ValueError(
                f'branch must be one of {cls.branches}, got {branch!r}')
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f'stride must be a positive int, got {stride!r}')
        if branch == 'none' and (in_channels != feat_channels or stride != 1):
            raise ValueError(
                f"branch='none' passes the stage map through, so it needs "
                f'in_channels == feat_channels and stride == 1, got '
                f'in_channels={in_channels}, feat_channels={feat_channels}, '
                f"stride={stride}; use branch='bottleneck' or "
                f"'attention_sepconv' for a shallower stage")
        if branch == 'attention_sepconv' and stride & (stride - 1):
            raise ValueError(
                f"branch='attention_sepconv' halves the map once per SepConv, "
                f'so stride must be a power of two, got {stride}')
        if branch == 'bottleneck' and feat_channels % 4:
            raise ValueError(
                f"branch='bottleneck' narrows to feat_channels / 4, so "
                f'feat_channels must be a multiple of 4, got {feat_channels}')

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Classify one stage map.

        Args:
            x (Tensor): Stage map of shape (B, in_channels, H, W).

        Returns:
            tuple[Tensor, Tensor, Tensor]: ``logits`` (B, num_classes),
            ``pooled_feat`` (B, feat_channels) and ``feat_map``
            (B, feat_channels, H / stride, W / stride), the branch output
            before pooling.
        """
        feat_map = self.forward_branch(x)
        pooled_feat = feat_map.mean((2, 3))
        return self.fc(pooled_feat), pooled_feat, feat_map

    def uses_patch_gemm(self, x: Tensor) -> bool:
        """Whether the branch runs as :func:`patch_gemm_bottleneck` on the stage map x."""
        k = self.stride
        return (self.branch_type == 'bottleneck' and 0 < self.patch_gemm_min_stride <= k
                and x.device.type == 'cpu' and x.shape[-2] % k == 0 and x.shape[-1] % k == 0)

    def forward_branch(self, x: Tensor) -> Tensor:
        """The branch's map (B, feat_channels, H / stride, W / stride) of a stage map x."""
        if self.uses_patch_gemm(x):
            return patch_gemm_bottleneck(self.branch, x, self.stride)
        return self.branch(x)
