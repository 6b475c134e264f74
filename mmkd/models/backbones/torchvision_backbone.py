"""Torchvision classification networks cut into 4 stages, as backbones."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torchvision
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmkd.registry import MODELS

# Module paths (relative to the backbone) of the stem and of the 4 stages.
Layout = Tuple[List[str], List[List[str]]]


def _set_stride_one(module: nn.Module) -> None:
    """Make every strided conv in ``module`` stride 1, keeping its weights.

    Used where the kernel already pads to "same" (EfficientNet), so only the
    stride has to change and ImageNet weights still fit.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
            m.stride = (1, 1)


@MODELS.register_module()
class TorchvisionBackbone(BaseModule):
    """A torchvision ImageNet classifier as a 4-stage backbone.

    Serves both the classifiers of knowledge distillation (e.g. ResNet-152 ->
    ResNet-50 / ResNet-34, DenseNet-201 -> EfficientNet-B0 / B1) and mmdet
    detectors with an FPN. For a 224x224 input the 4 stages are at strides
    4, 8, 16 and 32:

    - ResNet: stem ``conv1, bn1, relu, maxpool``; stages ``layer1..layer4``.
    - VGG (``features`` split after each max-pool): stem = block 1 (stride
      2); stages = blocks 2..5. ``avgpool`` and ``classifier`` are dropped.
    - DenseNet: stem ``conv0, norm0, relu0, pool0``; stage 0 =
      ``denseblock1``; stage ``i`` = ``transition{i}, denseblock{i + 1}``;
      stage 3 also ends with ``norm5`` and a ReLU (torchvision applies that
      ReLU in ``forward``), so it is the classifier's usual feature.
    - EfficientNet: stem ``features[0:2]`` (stride 2); stages
      ``features[2]``, ``features[3]``, ``features[4:6]``, ``features[6:9]``
      (the last ends with the 1x1 head conv, giving the usual 1280-d map).

    The torchvision modules keep their names (``layer1``, ``features.3``
    ...), so the state dict is torchvision's minus the head, and torchvision
    checkpoints load with ``load_state_dict`` (see ``pretrained``). Stages
    after ``max(out_indices)`` and the classification head are deleted, so
    that no parameter is unused (DistributedDataParallel would fail).

    Args:
        arch (str): One of ``'resnet18'``, ``'resnet34'``, ``'resnet50'``,
            ``'resnet101'``, ``'resnet152'``, ``'vgg16'``, ``'vgg19'``,
            ``'vgg16_bn'``, ``'vgg19_bn'``, ``'densenet121'``,
            ``'densenet201'``, ``'efficientnet_b0'``, ``'efficientnet_b1'``.
        out_indices (Sequence[int]): Stages to return, 0-based and strictly
            increasing, from (0, 1, 2, 3). ``(3,)`` suits classification,
            ``(0, 1, 2, 3)`` an FPN. Defaults to (3,).
        pretrained (bool): Build the torchvision model with
            ``weights='DEFAULT'`` (its ImageNet weights). torchvision
            downloads them into ``$TORCH_HOME/hub/checkpoints`` unless the
            file is already there, so this needs internet or a pre-filled
            cache. With ``small_input`` the replaced ResNet / DenseNet stem
            conv is newly initialised. Must not be combined with
            ``init_cfg``. Defaults to False.
        small_input (bool): Adapt to 32x32 (CIFAR) images by removing the
            stem's downsampling, so the stages are at strides 1, 2, 4, 8:
            ResNet ``conv1`` becomes 3x3 stride 1 and ``maxpool`` is dropped;
            DenseNet ``conv0`` likewise and ``pool0`` is dropped; VGG drops
            its first two max-pools; EfficientNet sets stride 1 in
            ``features[0]`` and ``features[2]`` (shapes unchanged, so
            ImageNet weights still fit). Defaults to False.
        frozen_stages (int): Freeze the stem and stages ``0..frozen_stages``
            (``requires_grad=False``, always in eval mode); -1 freezes
            nothing. Stages are 0-based here, so mmdet's ResNet
            ``frozen_stages=1`` (stem + ``layer1``) is ``frozen_stages=0``.
            Defaults to -1.
        norm_eval (bool): Keep every BN layer in eval mode during training
            (frozen running statistics, as in mmdet). Defaults to False.
        init_cfg (dict or list[dict], optional): Initialization config. When
            None the torchvision initialisation (or its ImageNet weights) is
            kept. Defaults to None.

    Attributes:
        stage_channels (list[int]): Channels of all 4 stages, e.g.
            ``[64, 128, 256, 512]`` (ResNet-18/34), ``[256, 512, 1024,
            2048]`` (ResNet-50/101/152), ``[128, 256, 512, 512]`` (VGG),
            ``[256, 512, 1024, 1024]`` (DenseNet-121), ``[256, 512, 1792,
            1920]`` (DenseNet-201), ``[24, 40, 112, 1280]`` (EfficientNet-B0
            and B1).
        out_channels (list[int]): Channels of the ``out_indices`` stages, in
            order.
    """

    # arch -> (family, channels of the 4 stages)
    arch_settings: Dict[str, Tuple[str, Tuple[int, int, int, int]]] = {
        'resnet18': ('resnet', (64, 128, 256, 512)),
        'resnet34': ('resnet', (64, 128, 256, 512)),
        'resnet50': ('resnet', (256, 512, 1024, 2048)),
        'resnet101': ('resnet', (256, 512, 1024, 2048)),
        'resnet152': ('resnet', (256, 512, 1024, 2048)),
        'vgg16': ('vgg', (128, 256, 512, 512)),
        'vgg19': ('vgg', (128, 256, 512, 512)),
        'vgg16_bn': ('vgg', (128, 256, 512, 512)),
        'vgg19_bn': ('vgg', (128, 256, 512, 512)),
        'densenet121': ('densenet', (256, 512, 1024, 1024)),
        'densenet201': ('densenet', (256, 512, 1792, 1920)),
        'efficientnet_b0': ('efficientnet', (24, 40, 112, 1280)),
        'efficientnet_b1': ('efficientnet', (24, 40, 112, 1280)),
    }

    def __init__(self,
                 arch: str,
                 out_indices: Sequence[int] = (3, ),
                 pretrained: bool = False,
                 small_input: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        self._check_args(arch, out_indices, pretrained, frozen_stages,
                         init_cfg)
        self.arch = arch
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        family, channels = self.arch_settings[arch]
        self.stage_channels = list(channels)
        self.out_channels = [channels[i] for i in self.out_indices]

        # Looked up at call time so that tests can monkeypatch the builder.
        model = getattr(torchvision.models, arch)(
            weights='DEFAULT' if pretrained else None)
        adopt = getattr(self, f'_adopt_{family}')
        self._stem_names, self._stage_names = adopt(model, small_input)
        self._drop_stages_after(self.out_indices[-1])
        self._freeze_stages()

    @classmethod
    def _check_args(cls, arch: str, out_indices: Sequence[int],
                    pretrained: bool, frozen_stages: int,
                    init_cfg: Optional[Union[dict, List[dict]]]) -> None:
        if arch not in cls.arch_settings:
            raise ValueError(f'arch must be one of {list(cls.arch_settings)}'
                             f', got {arch!r}')
        if (not isinstance(out_indices, Sequence) or len(out_indices) == 0
                or any(i not in (0, 1, 2, 3) for i in out_indices)
                or list(out_indices) != sorted(set(out_indices))):
            raise ValueError(
                f'out_indices must be a non-empty, strictly increasing '
                f'sequence of stage indices from (0, 1, 2, 3), e.g. (3,) or '
                f'(0, 1, 2, 3), got {out_indices!r}')
        if frozen_stages not in (-1, 0, 1, 2, 3):
            raise ValueError(f'frozen_stages must be one of -1 (freeze '
                             f'nothing), 0, 1, 2, 3, got {frozen_stages!r}')
        if pretrained and init_cfg is not None:
            raise ValueError(
                'pretrained=True and init_cfg would both set the weights; '
                'use one of them and leave the other at its default')

    def _adopt_resnet(self, model: nn.Module, small_input: bool) -> Layout:
        if small_input:
            model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            # torchvision ResNet's own init for its convs.
            nn.init.kaiming_normal_(
                model.conv1.weight, mode='fan_out', nonlinearity='relu')
            model.maxpool = nn.Identity()
        stem = ['conv1', 'bn1', 'relu', 'maxpool']
        stages = [[f'layer{i}'] for i in range(1, 5)]
        for name in stem + [s[0] for s in stages]:
            self.add_module(name, getattr(model, name))
        return stem, stages

    def _adopt_vgg(self, model: nn.Module, small_input: bool) -> Layout:
        features = model.features
        pools = [
            i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)
        ]
        if small_input:
            # Identity keeps the indices, hence the state-dict keys.
            features[pools[0]] = nn.Identity()
            features[pools[1]] = nn.Identity()
        self.features = features
        starts = [0] + [p + 1 for p in pools[:-1]]
        blocks = [[f'features.{i}' for i in range(start, end + 1)]
                  for start, end in zip(starts, pools)]
        return blocks[0], blocks[1:]

    def _adopt_densenet(self, model: nn.Module, small_input: bool) -> Layout:
        features = model.features
        if small_input:
            width = features.conv0.out_channels
            features.conv0 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            # torchvision DenseNet's own init for its convs.
            nn.init.kaiming_normal_(features.conv0.weight)
            features.pool0 = nn.Identity()
        # torchvision applies this ReLU in forward() after norm5; as a module
        # it belongs to stage 3 and adds no state-dict key.
        features.add_module('relu5', nn.ReLU(inplace=True))
        self.features = features
        names = [f'features.{n}' for n, _ in features.named_children()]
        stem = names[:4]  # conv0, norm0, relu0, pool0
        # denseblock1 | transition1, denseblock2 | ... | ..., norm5, relu5
        stages = [names[4:5], names[5:7], names[7:9], names[9:]]
        return stem, stages

    def _adopt_efficientnet(self, model: nn.Module,
                            small_input: bool) -> Layout:
        features = model.features
        if small_input:
            # The stem conv and the first block of features[2] are the two
            # stride-2 layers before stage 0.
            _set_stride_one(features[0])
            _set_stride_one(features[2])
        self.features = features
        stem = ['features.0', 'features.1']
        stages = [['features.2'], ['features.3'], ['features.4', 'features.5'],
                  ['features.6', 'features.7', 'features.8']]
        return stem, stages

    def _drop_stages_after(self, last: int) -> None:
        """Delete stages that no output needs, so none has unused params."""
        for names in self._stage_names[last + 1:]:
            for name in names:
                parent, _, child = name.rpartition('.')
                delattr(self.get_submodule(parent), child)
        self._stage_names = self._stage_names[:last + 1]

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        names = self._stem_names + [
            name for stage in self._stage_names[:self.frozen_stages + 1]
            for name in stage
        ]
        return [self.get_submodule(name) for name in names]

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'TorchvisionBackbone':
        """Set train mode, keeping frozen stages (and BN with ``norm_eval``)
        in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def _run(self, names: List[str], x: Tensor) -> Tensor:
        for name in names:
            x = self.get_submodule(name)(x)
        return x

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Run the stem and the stages up to ``max(out_indices)``.

        Args:
            x (Tensor): Images of shape (B, 3, H, W).

        Returns:
            tuple[Tensor]: One map per ``out_indices`` entry; stage ``i`` has
            ``stage_channels[i]`` channels at stride ``2**(i + 2)`` (``2**i``
            with ``small_input``).
        """
        x = self._run(self._stem_names, x)
        outs = []
        for i, names in enumerate(self._stage_names):
            x = self._run(names, x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
