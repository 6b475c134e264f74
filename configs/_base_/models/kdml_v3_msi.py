# Paper B V3: densenet201 teacher -> efficientnet_b0 + efficientnet_b1 students (224x224 tiles);
# everything else as V1 (kdml_v1_msi.py).
_base_ = './kdml_v1_msi.py'
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
model = dict(
    teacher=dict(backbone=dict(arch='densenet201')),
    students=[
        dict(
            type='ImageClassifier',
            num_classes=2,
            backbone=dict(
                type='TorchvisionBackbone',
                arch='efficientnet_b0',
                small_input=False,
                pretrained=pretrained)),
        dict(
            type='ImageClassifier',
            num_classes=2,
            backbone=dict(
                type='TorchvisionBackbone',
                arch='efficientnet_b1',
                small_input=False,
                pretrained=pretrained)),
    ])
