# Paper B V2: resnet152 teacher (as V1) -> vgg16 + vgg19 students (224x224 tiles); everything
# else as V1 (kdml_v1_msi.py).
_base_ = './kdml_v1_msi.py'
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
model = dict(
    students=[
        dict(
            type='ImageClassifier',
            num_classes=2,
            backbone=dict(
                type='TorchvisionBackbone',
                arch='vgg16',
                small_input=False,
                pretrained=pretrained)),
        dict(
            type='ImageClassifier',
            num_classes=2,
            backbone=dict(
                type='TorchvisionBackbone',
                arch='vgg19',
                small_input=False,
                pretrained=pretrained)),
    ])
