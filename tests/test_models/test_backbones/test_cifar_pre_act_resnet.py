import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd.models.backbones import CIFARPreActResNet
from mmkd.models.backbones.cifar_pre_act_resnet import PreActBlock
from mmkd.registry import MODELS


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class TestCIFARPreActResNet:

    @pytest.mark.parametrize('depth', [18, 34])
    @pytest.mark.parametrize('num_stages', [1, 2, 3, 4])
    def test_stage_shapes(self, depth, num_stages):
        model = CIFARPreActResNet(
            depth, num_stages=num_stages, base_channels=8)
        outs = model(torch.randn(2, 3, 32, 32))
        channels = [8 * 2**i for i in range(num_stages)]
        assert model.out_channels == channels
        assert [tuple(o.shape) for o in outs] == [
            (2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(channels)
        ]

    def test_preact18_param_count(self):
        # Against the post-activation CIFAR ResNet-18 backbone (11,168,832):
        # the 3 downsampling blocks normalize their input (64 + 128 + 256
        # channels) instead of their output (128 + 256 + 512), -448 * 2 =
        # -896, and their shortcuts have no BN, -(128 + 256 + 512) * 2 =
        # -1,792; so 11,166,144, and 11,217,444 with PS-KD's Linear(512, 100)
        # (51,300). 11,220,132 is the post-activation model's total.
        model = CIFARPreActResNet(18)
        assert model.out_channels == [64, 128, 256, 512]
        assert num_params(model) == 11_168_832 - 896 - 1_792 == 11_166_144
        assert num_params(model) + 512 * 100 + 100 == 11_217_444

    def test_shortcut_is_a_bare_conv(self):
        model = CIFARPreActResNet(18, base_channels=8)
        for i in (2, 3, 4):
            shortcut = getattr(model, f'layer{i}')[0].shortcut
            assert [type(m) for m in shortcut] == [nn.Conv2d]
            assert shortcut[0].stride == (2, 2) and shortcut[0].bias is None
        assert len(model.layer1[0].shortcut) == 0
        assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())

    def test_block_matches_ps_kd_formula(self):
        block = PreActBlock(8, 8).eval()
        x = torch.randn(2, 8, 8, 8)
        pre = F.relu(block.bn1(x))
        expected = block.conv2(F.relu(block.bn2(block.conv1(pre)))) + pre
        torch.testing.assert_close(block(x), expected)

    def test_last_stage_has_no_final_bn_relu(self):
        model = CIFARPreActResNet(18, base_channels=8).eval()
        assert list(model.children())[-1] is model.layer4
        out = model(torch.randn(2, 3, 32, 32))[-1]
        assert out.min() < 0

    def test_build_from_registry(self):
        model = MODELS.build(
            dict(type='CIFARPreActResNet', depth=18, base_channels=8))
        assert isinstance(model, CIFARPreActResNet)

    @pytest.mark.parametrize('kwargs, argument', [
        (dict(depth=50), 'depth'),
        (dict(depth=18, num_stages=0), 'num_stages'),
        (dict(depth=18, num_stages=5), 'num_stages'),
        (dict(depth=18, base_channels=0), 'base_channels'),
    ])
    def test_invalid_args_raise(self, kwargs, argument):
        with pytest.raises(ValueError, match=argument):
            CIFARPreActResNet(**kwargs)
