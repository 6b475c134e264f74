import pytest
import torch
import torch.nn as nn

from mmkd.models.backbones import CIFARResNet
from mmkd.models.backbones.cifar_resnet import Bottleneck
from mmkd.registry import MODELS


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class TestCIFARResNet:

    @pytest.mark.parametrize('depth, expansion', [(18, 1), (34, 1), (50, 4),
                                                  (101, 4)])
    @pytest.mark.parametrize('num_stages', [1, 2, 3, 4])
    def test_stage_shapes(self, depth, expansion, num_stages):
        model = CIFARResNet(depth, num_stages=num_stages, base_channels=8)
        outs = model(torch.randn(2, 3, 32, 32))
        channels = [8 * 2**i * expansion for i in range(num_stages)]
        assert model.out_channels == channels
        assert [tuple(o.shape) for o in outs] == [
            (2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(channels)
        ]

    def test_full_width_out_channels(self):
        assert CIFARResNet(18).out_channels == [64, 128, 256, 512]
        assert CIFARResNet(50).out_channels == [256, 512, 1024, 2048]

    def test_resnet18_param_count(self):
        # torchvision resnet18: 11,689,512 params, minus fc (512 * 1000 + 1000
        # = 513,000) and the 7x7 -> 3x3 stem ((49 - 9) * 3 * 64 = 7,680) gives
        # 11,168,832; with a Linear(512, 100) (51,300) the CIFAR-100 model
        # has 11,220,132.
        backbone = num_params(CIFARResNet(18))
        assert backbone == 11_689_512 - 513_000 - 7_680 == 11_168_832
        assert backbone + 512 * 100 + 100 == 11_220_132

    @pytest.mark.parametrize('name, kwargs', [
        ('resnet18', dict(depth=18)),
        ('resnet50', dict(depth=50)),
        ('resnext50_32x4d', dict(depth=50, groups=32, width_per_group=4)),
    ])
    def test_matches_torchvision_except_stem_and_fc(self, name, kwargs):
        torchvision = pytest.importorskip('torchvision')
        reference = getattr(torchvision.models, name)().state_dict()
        shapes = {k: v.shape for k, v in reference.items()}
        ours = {k: v.shape for k, v in CIFARResNet(**kwargs).state_dict()
                .items()}
        # Only the stem conv differs (3x3 instead of 7x7); fc is not ours.
        assert ours.pop('conv1.weight') == (64, 3, 3, 3)
        del shapes['conv1.weight'], shapes['fc.weight'], shapes['fc.bias']
        assert ours == shapes

    def test_resnext50_32x4d_widths_and_groups(self):
        model = CIFARResNet(50, groups=32, width_per_group=4)
        assert model.out_channels == [256, 512, 1024, 2048]
        for i, width in enumerate([128, 256, 512, 1024]):
            blocks = list(getattr(model, f'layer{i + 1}'))
            assert all(isinstance(b, Bottleneck) for b in blocks)
            assert {b.conv2.groups for b in blocks} == {32}
            assert {b.conv2.out_channels for b in blocks} == {width}

    def test_tiny_resnext_forward(self):
        # 16 * 4 / 64 = 1 channel per group at the first stage.
        model = CIFARResNet(
            50, groups=32, width_per_group=4, num_stages=2, base_channels=16)
        outs = model(torch.randn(2, 3, 32, 32))
        assert [o.shape[1] for o in outs] == [64, 128]
        assert model.layer1[0].conv2.groups == 32

    def test_cifar_stem(self):
        model = CIFARResNet(18, base_channels=8)
        assert model.conv1.kernel_size == (3, 3)
        assert model.conv1.stride == (1, 1)
        assert model.conv1.bias is None
        assert not any(
            isinstance(m, nn.MaxPool2d) for m in model.modules())

    def test_init_weights_default(self):
        model = CIFARResNet(18, num_stages=4)
        model.init_weights()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        # Kaiming normal, fan_out = 512 * 3 * 3: std = sqrt(2 / 4608).
        std = model.layer4[1].conv2.weight.std().item()
        assert std == pytest.approx((2 / 4608)**0.5, rel=0.05)

    def test_init_cfg_overrides_default(self):
        model = CIFARResNet(
            18,
            num_stages=1,
            base_channels=8,
            init_cfg=dict(type='Constant', layer='Conv2d', val=0.5))
        model.init_weights()
        assert torch.all(model.conv1.weight == 0.5)
        assert torch.all(model.layer1[0].conv1.weight == 0.5)

    def test_build_from_registry(self):
        model = MODELS.build(dict(type='CIFARResNet', depth=18,
                                  base_channels=8))
        assert isinstance(model, CIFARResNet)

    @pytest.mark.parametrize('kwargs, argument', [
        (dict(depth=20), 'depth'),
        (dict(depth=18, num_stages=0), 'num_stages'),
        (dict(depth=18, num_stages=5), 'num_stages'),
        (dict(depth=18, base_channels=0), 'base_channels'),
        (dict(depth=18, groups=32, width_per_group=4), 'groups'),
        (dict(depth=50, groups=32, width_per_group=4, base_channels=8),
         'base_channels'),
    ])
    def test_invalid_args_raise(self, kwargs, argument):
        with pytest.raises(ValueError, match=argument):
            CIFARResNet(**kwargs)
