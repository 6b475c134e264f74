import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.nn.modules.batchnorm import _BatchNorm

from mmkd.models.backbones import TorchvisionBackbone
from mmkd.registry import MODELS

ALL_STAGES = (0, 1, 2, 3)
# The heads the backbone drops, by torchvision attribute name.
HEADS = {
    'resnet': ('fc', ),
    'vgg': ('avgpool', 'classifier'),
    'densenet': ('classifier', ),
    'efficientnet': ('avgpool', 'classifier')
}


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def family(arch: str) -> str:
    return TorchvisionBackbone.arch_settings[arch][0]


def headless_state_dict(model: nn.Module, arch: str) -> dict:
    heads = tuple(f'{h}.' for h in HEADS[family(arch)])
    return {
        k: v
        for k, v in model.state_dict().items() if not k.startswith(heads)
    }


def torchvision_logits(model: nn.Module, arch: str, feat: torch.Tensor):
    """Torchvision's head applied to the backbone's last map."""
    if family(arch) == 'densenet':
        # torchvision's DenseNet pools functionally; the ReLU is ours.
        pooled = F.adaptive_avg_pool2d(feat, 1)
    else:
        pooled = model.avgpool(feat)
    head = model.fc if family(arch) == 'resnet' else model.classifier
    return head(torch.flatten(pooled, 1))


def check_stage_shapes(backbone, size, strides):
    outs = backbone(torch.randn(1, 3, size, size))
    assert len(outs) == len(backbone.out_channels)
    assert [o.shape[1] for o in outs] == backbone.out_channels
    assert [size // o.shape[-1] for o in outs] == list(strides)


class TestTorchvisionBackbone:

    # resnet152 runs only here, densenet201 only in the param-count test.
    @pytest.mark.parametrize('arch, channels', [
        ('resnet18', [64, 128, 256, 512]),
        ('resnet34', [64, 128, 256, 512]),
        ('resnet50', [256, 512, 1024, 2048]),
        ('resnet101', [256, 512, 1024, 2048]),
        ('resnet152', [256, 512, 1024, 2048]),
        ('vgg16', [128, 256, 512, 512]),
        ('vgg19', [128, 256, 512, 512]),
        ('vgg16_bn', [128, 256, 512, 512]),
        ('vgg19_bn', [128, 256, 512, 512]),
        ('densenet121', [256, 512, 1024, 1024]),
        ('efficientnet_b0', [24, 40, 112, 1280]),
        ('efficientnet_b1', [24, 40, 112, 1280]),
    ])
    def test_stage_strides_and_channels(self, arch, channels):
        backbone = TorchvisionBackbone(arch, out_indices=ALL_STAGES).eval()
        assert backbone.stage_channels == channels
        assert backbone.out_channels == channels
        check_stage_shapes(backbone, 64, (4, 8, 16, 32))

    @pytest.mark.parametrize('arch', [
        'resnet18', 'resnet50', 'vgg19_bn', 'densenet121', 'efficientnet_b0',
        'efficientnet_b1'
    ])
    def test_small_input_strides(self, arch):
        backbone = TorchvisionBackbone(
            arch, out_indices=ALL_STAGES, small_input=True).eval()
        check_stage_shapes(backbone, 32, (1, 2, 4, 8))

    def test_small_input_stems(self):
        resnet = TorchvisionBackbone('resnet18', small_input=True)
        assert resnet.conv1.kernel_size == (3, 3)
        assert resnet.conv1.stride == (1, 1)
        assert isinstance(resnet.maxpool, nn.Identity)
        densenet = TorchvisionBackbone('densenet121', small_input=True)
        assert densenet.features.conv0.kernel_size == (3, 3)
        assert densenet.features.conv0.stride == (1, 1)
        assert isinstance(densenet.features.pool0, nn.Identity)
        vgg = TorchvisionBackbone('vgg16', small_input=True)
        pools = [m for m in vgg.modules() if isinstance(m, nn.MaxPool2d)]
        assert len(pools) == 3

    def test_out_indices_subset(self):
        backbone = TorchvisionBackbone('resnet18', out_indices=(1, 3)).eval()
        assert backbone.out_channels == [128, 512]
        check_stage_shapes(backbone, 64, (8, 32))
        # Stages after the last output are deleted: nothing left unused.
        short = TorchvisionBackbone('efficientnet_b0', out_indices=(0, 1))
        assert not hasattr(short.features, '4')
        assert short.stage_channels == [24, 40, 112, 1280]
        assert short.out_channels == [24, 40]
        check_stage_shapes(short.eval(), 64, (4, 8))

    @pytest.mark.parametrize(
        'arch, total, head',
        [
            # 25,557,032 - fc (2048 * 1000 + 1000 = 2,049,000) = 23,508,032
            ('resnet50', 25_557_032, 2_049_000),
            # 21,797,672 - fc (512 * 1000 + 1000 = 513,000) = 21,284,672
            ('resnet34', 21_797_672, 513_000),
            # 138,357,544 - classifier (25088 * 4096 + 4096 = 102,764,544,
            # 4096 * 4096 + 4096 = 16,781,312, 4096 * 1000 + 1000 = 4,097,000;
            # 123,642,856) = 14,714,688, the 13 convs of ``features``
            ('vgg16', 138_357_544, 123_642_856),
            # 20,013,928 - classifier (1920 * 1000 + 1000 = 1,921,000)
            # = 18,092,928
            ('densenet201', 20_013_928, 1_921_000),
            # 5,288,548 - classifier (1280 * 1000 + 1000 = 1,281,000)
            # = 4,007,548
            ('efficientnet_b0', 5_288_548, 1_281_000),
        ])
    def test_matches_torchvision_minus_head(self, arch, total, head):
        reference = getattr(torchvision.models, arch)(weights=None).eval()
        backbone = TorchvisionBackbone(arch).eval()
        assert num_params(reference) == total
        assert num_params(backbone) == total - head
        # Same keys as torchvision minus the head, so its checkpoints load.
        backbone.load_state_dict(headless_state_dict(reference, arch))
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            feat, = backbone(x)
            torch.testing.assert_close(
                torchvision_logits(reference, arch, feat), reference(x))

    def test_efficientnet_small_input_keeps_weight_shapes(self):
        reference = torchvision.models.efficientnet_b0(weights=None)
        backbone = TorchvisionBackbone('efficientnet_b0', small_input=True)
        backbone.load_state_dict(
            headless_state_dict(reference, 'efficientnet_b0'))

    @pytest.mark.parametrize('pretrained, weights', [(False, None),
                                                     (True, 'DEFAULT')])
    def test_pretrained_reaches_torchvision(self, monkeypatch, pretrained,
                                            weights):
        # No internet in tests: capture the argument, build without weights.
        builder = torchvision.models.resnet18
        captured = {}

        def fake_builder(**kwargs):
            captured.update(kwargs)
            return builder(weights=None)

        monkeypatch.setattr(torchvision.models, 'resnet18', fake_builder)
        TorchvisionBackbone('resnet18', pretrained=pretrained)
        assert captured == dict(weights=weights)

    def test_frozen_stages(self):
        backbone = TorchvisionBackbone(
            'resnet18', out_indices=ALL_STAGES, frozen_stages=1)
        backbone.train()
        frozen = [
            backbone.conv1, backbone.bn1, backbone.layer1, backbone.layer2
        ]
        for module in frozen:
            assert all(not p.requires_grad for p in module.parameters())
            assert all(not m.training for m in module.modules())
        for module in (backbone.layer3, backbone.layer4):
            assert all(p.requires_grad for p in module.parameters())
            assert all(m.training for m in module.modules())
        # Trainable parameters still get gradients; frozen ones none.
        sum(o.sum() for o in backbone(torch.randn(1, 3, 64, 64))).backward()
        for p in backbone.parameters():
            assert (p.grad is not None) == p.requires_grad

    def test_frozen_stages_sequential_features(self):
        backbone = TorchvisionBackbone('efficientnet_b0', frozen_stages=0)
        backbone.train()
        for i, feature in enumerate(backbone.features):
            frozen = i <= 2  # stem features[0:2] and stage 0 features[2]
            assert all(p.requires_grad != frozen for p in feature.parameters())
            assert all(m.training != frozen for m in feature.modules())

    def test_norm_eval(self):
        backbone = TorchvisionBackbone('densenet121', norm_eval=True)
        backbone.train()
        bns = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
        assert bns and all(not m.training for m in bns)
        assert all(p.requires_grad for p in backbone.parameters())
        assert backbone.features.denseblock4.training
        backbone.eval().train()
        assert all(not m.training for m in bns)

    @pytest.mark.parametrize('arch, out_indices', [
        ('resnet18', ALL_STAGES),
        ('vgg16_bn', ALL_STAGES),
        ('densenet121', ALL_STAGES),
        ('efficientnet_b0', ALL_STAGES),
        ('densenet121', (1, )),
    ])
    def test_no_unused_parameters(self, arch, out_indices):
        backbone = TorchvisionBackbone(arch, out_indices=out_indices).train()
        outs = backbone(torch.randn(1, 3, 64, 64))
        sum(o.sum() for o in outs).backward()
        unused = [
            name for name, p in backbone.named_parameters()
            if p.requires_grad and p.grad is None
        ]
        assert unused == []

    def test_gradient_reaches_last_stage(self):
        backbone = TorchvisionBackbone('resnet18').train()
        feat, = backbone(torch.randn(1, 3, 64, 64))
        feat.pow(2).mean().backward()
        assert backbone.layer4[-1].conv2.weight.grad.abs().sum() > 0
        assert backbone.conv1.weight.grad.abs().sum() > 0

    def test_build_from_registry(self):
        backbone = MODELS.build(
            dict(type='TorchvisionBackbone', arch='resnet18'))
        assert isinstance(backbone, TorchvisionBackbone)
        assert backbone.out_channels == [512]

    @pytest.mark.parametrize('kwargs, match', [
        (dict(arch='resnet200'), 'arch must be one of'),
        (dict(arch='vgg11'), 'arch must be one of'),
        (dict(arch='resnet18', out_indices=(4, )), 'out_indices'),
        (dict(arch='resnet18', out_indices=()), 'out_indices'),
        (dict(arch='resnet18', out_indices=(2, 1)), 'out_indices'),
        (dict(arch='resnet18', out_indices=(1, 1)), 'out_indices'),
        (dict(arch='resnet18', out_indices=3), 'out_indices'),
        (dict(arch='resnet18', frozen_stages=4), 'frozen_stages'),
        (dict(arch='resnet18', frozen_stages=-2), 'frozen_stages'),
        (dict(arch='resnet18', pretrained=True,
              init_cfg=dict(type='Kaiming')), 'pretrained'),
    ])
    def test_invalid_args(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            TorchvisionBackbone(**kwargs)
