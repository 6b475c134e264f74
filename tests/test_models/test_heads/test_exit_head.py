import pytest
import torch
import torch.nn as nn

from mmkd.models.backbones import CIFARResNet
from mmkd.models.heads import ExitHead
from mmkd.models.heads.exit_head import SepConv, SepConvAttention
from mmkd.registry import MODELS

NUM_CLASSES = 5


def build_exits(channels, branch):
    """One exit per stage; stage i of N gets stride 2**(N - i)."""
    n = len(channels)
    return [
        ExitHead(
            in_channels=c,
            feat_channels=channels[-1],
            stride=2**(n - 1 - i),
            num_classes=NUM_CLASSES,
            branch=branch if i < n - 1 else 'none')
        for i, c in enumerate(channels)
    ]


class TestExitHead:

    @pytest.mark.parametrize('depth', [18, 50])
    @pytest.mark.parametrize('num_stages', [2, 3, 4])
    @pytest.mark.parametrize('branch', ['bottleneck', 'attention_sepconv'])
    def test_exit_shapes_on_every_stage(self, depth, num_stages, branch):
        backbone = CIFARResNet(depth, num_stages=num_stages, base_channels=8)
        channels = backbone.out_channels
        exits = build_exits(channels, branch)
        size = 32 // 2**(num_stages - 1)
        for head, x in zip(exits, backbone(torch.randn(2, 3, 32, 32))):
            logits, pooled, feat_map = head(x)
            assert logits.shape == (2, NUM_CLASSES)
            assert pooled.shape == (2, channels[-1])
            assert feat_map.shape == (2, channels[-1], size, size)

    def test_full_width_shallowest_exits_give_4x4(self):
        # Shape only: the first stage of a full-width ResNet-18 at 32x32.
        x = torch.randn(1, 64, 32, 32)
        for branch in ('bottleneck', 'attention_sepconv'):
            head = ExitHead(64, 512, 8, NUM_CLASSES, branch=branch).eval()
            assert head(x)[2].shape == (1, 512, 4, 4)

    def test_pooled_feat_and_logits(self):
        head = ExitHead(8, 32, 2, NUM_CLASSES).eval()
        logits, pooled, feat_map = head(torch.randn(2, 8, 8, 8))
        torch.testing.assert_close(pooled, feat_map.mean((2, 3)))
        torch.testing.assert_close(logits, head.fc(pooled))

    def test_none_branch_is_identity(self):
        head = ExitHead(16, 16, 1, NUM_CLASSES, branch='none')
        x = torch.randn(2, 16, 4, 4)
        assert head(x)[2] is x
        assert [n for n, _ in head.named_parameters()] == [
            'fc.weight', 'fc.bias'
        ]

    def test_bottleneck_layout(self):
        head = ExitHead(16, 64, 4, NUM_CLASSES, branch='bottleneck')
        convs = [m for m in head.branch if isinstance(m, nn.Conv2d)]
        assert [(c.in_channels, c.out_channels) for c in convs] == [(16, 16),
                                                                    (16, 16),
                                                                    (16, 64)]
        assert [c.kernel_size for c in convs] == [(1, 1), (4, 4), (1, 1)]
        assert [c.stride for c in convs] == [(1, 1), (4, 4), (1, 1)]
        assert all(c.bias is not None for c in convs)
        assert sum(isinstance(m, nn.BatchNorm2d) for m in head.branch) == 3

    def test_attention_sepconv_layout(self):
        # ResNeXt-50 stage 1: 256 channels * 8 == 2048, no final 1x1 conv.
        head = ExitHead(256, 2048, 8, NUM_CLASSES, branch='attention_sepconv')
        layers = list(head.branch)
        assert isinstance(layers[0], SepConvAttention)
        assert [type(m) for m in layers[1:]] == [SepConv] * 3
        outs = [m.op[-3].out_channels for m in layers[1:]]
        assert outs == [512, 1024, 2048]
        # Otherwise a 1x1 conv, BN and ReLU close the gap to feat_channels.
        head = ExitHead(16, 48, 2, NUM_CLASSES, branch='attention_sepconv')
        assert [type(m) for m in head.branch][-3:] == [
            nn.Conv2d, nn.BatchNorm2d, nn.ReLU
        ]
        assert head(torch.randn(2, 16, 8, 8))[2].shape == (2, 48, 4, 4)

    def test_attention_mask_scales_input(self):
        attention = SepConvAttention(4).eval()
        x = torch.randn(2, 4, 8, 8)
        ratio = attention(x) / x
        assert torch.all((ratio > 0) & (ratio < 1))

    @pytest.mark.parametrize('branch', ['bottleneck', 'attention_sepconv'])
    def test_gradients_reach_every_parameter(self, branch):
        head = ExitHead(8, 32, 4, NUM_CLASSES, branch=branch)
        head.init_weights()
        head(torch.randn(4, 8, 16, 16))[0].sum().backward()
        for name, param in head.named_parameters():
            assert param.grad is not None, name
            # Conv biases right before a BN get ~0 gradient by design.
            if param.dim() > 1:
                assert param.grad.abs().sum() > 0, name

    def test_init_weights_default(self):
        head = ExitHead(8, 32, 2, NUM_CLASSES)
        head.init_weights()
        bns = [m for m in head.modules() if isinstance(m, nn.BatchNorm2d)]
        assert all(torch.all(m.weight == 1) for m in bns)
        assert all(torch.all(m.bias == 0) for m in bns)

    def test_build_from_registry(self):
        head = MODELS.build(
            dict(
                type='ExitHead',
                in_channels=8,
                feat_channels=16,
                stride=2,
                num_classes=NUM_CLASSES))
        assert isinstance(head, ExitHead)

    @pytest.mark.parametrize('kwargs, argument', [
        (dict(branch='conv'), 'branch'),
        (dict(stride=0), 'stride'),
        (dict(stride=2.0), 'stride'),
        (dict(branch='attention_sepconv', stride=3), 'stride'),
        (dict(branch='none', stride=1), 'in_channels'),
        (dict(branch='none', in_channels=32, stride=2), 'stride'),
        (dict(feat_channels=30), 'feat_channels'),
    ])
    def test_invalid_args_raise(self, kwargs, argument):
        args = dict(
            in_channels=8,
            feat_channels=32,
            stride=2,
            num_classes=NUM_CLASSES)
        args.update(kwargs)
        with pytest.raises(ValueError, match=argument):
            ExitHead(**args)
