# A CIFAR rx50 cut into its 4 stages, an exit after each (exit4 = the usual classifier).
# PS-KD, BYOT and DMFL are off (model.pskd/byot/dmfl unset); each config sets those its
# paper row uses, e.g. model = dict(pskd=dict(alpha_t=0.8), byot=dict(), dmfl=dict()).
model = dict(
    type='MultiExitDistiller',
    backbone=dict(type='CIFARResNet', depth=50, groups=32, width_per_group=4, num_stages=4),
    num_classes=100,
    exit_branch='attention_sepconv',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        # Paper A's text: ImageNet statistics (its code used the CIFAR ones of the PS-KD configs).
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        pad=4,
        flip=True))
custom_hooks = [dict(type='PSKDMemoryHook')]
