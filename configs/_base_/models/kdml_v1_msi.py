# Paper B V1: resnet152 teacher -> resnet50 + resnet34 students (224x224 tiles).
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
model = dict(
    type='KDMLDistiller',
    teacher=dict(
        type='ImageClassifier',
        num_classes=2,
        backbone=dict(type='TorchvisionBackbone', arch='resnet152', small_input=False, pretrained=pretrained)),
    students=[
        dict(
            type='ImageClassifier',
            num_classes=2,
            backbone=dict(type='TorchvisionBackbone', arch='resnet50', small_input=False, pretrained=pretrained)),
        dict(
            type='ImageClassifier',
            num_classes=2,
            backbone=dict(type='TorchvisionBackbone', arch='resnet34', small_input=False, pretrained=pretrained)),
    ],
    teacher_mode='online',
    cls_weight=0.1,
    kd_weight=0.45,
    ml_weight=0.45,
    temperature=2.0,
    peer_kl_direction='peer_to_self',
    ensemble='max',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        pad=0,
        flip=True))
