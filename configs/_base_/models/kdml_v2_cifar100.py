# Paper B V2: resnet152 teacher (as V1) -> vgg16 + vgg19 students (32x32 images); everything else
# as V1 (kdml_v1_cifar100.py).
_base_ = './kdml_v1_cifar100.py'
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
model = dict(
    students=[
        dict(
            type='ImageClassifier',
            num_classes=100,
            backbone=dict(
                type='TorchvisionBackbone',
                arch='vgg16',
                small_input=True,
                pretrained=pretrained)),
        dict(
            type='ImageClassifier',
            num_classes=100,
            backbone=dict(
                type='TorchvisionBackbone',
                arch='vgg19',
                small_input=True,
                pretrained=pretrained)),
    ])
