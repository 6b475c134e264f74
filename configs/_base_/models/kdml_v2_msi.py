# Paper B V2: resnet152 teacher (as V1) -> vgg16 + vgg19 students (224x224 tiles); everything
# else as V1 (kdml_v1_msi.py). pretrained=True: torchvision ImageNet weights (needs internet).
_base_ = './kdml_v1_msi.py'
pretrained = False
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
