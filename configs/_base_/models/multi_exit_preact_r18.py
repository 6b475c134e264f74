# A CIFAR preact-r18 cut into its 4 stages, an exit after each (exit4 = the usual classifier).
# PS-KD, BYOT and DMFL are off (model.pskd/byot/dmfl unset); each config sets those its
# paper row uses, e.g. model = dict(pskd=dict(alpha_t=0.8), byot=dict(), dmfl=dict()).
model = dict(
    type='MultiExitDistiller',
    backbone=dict(type='CIFARPreActResNet', depth=18, num_stages=4),
    num_classes=100,
    exit_branch='bottleneck',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        # PS-KD's code normalises with these (CIFAR-10) statistics, in 0-255 units.
        mean=[125.307, 122.961, 113.8575],
        std=[51.5865, 50.847, 51.255],
        pad=4,
        flip=True))
custom_hooks = [dict(type='PSKDMemoryHook')]
