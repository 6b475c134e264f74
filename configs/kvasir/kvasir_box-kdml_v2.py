_base_ = './kvasir_box-kdml_v1.py'
# Paper B V2 in its own setting (single box + confidence per image, SPEC §5.3 mode R).
pretrained = False
model = dict(
    students=[
        dict(
            type='SingleBoxRegressor',
            backbone=dict(type='TorchvisionBackbone', arch='vgg16', pretrained=pretrained)),
        dict(
            type='SingleBoxRegressor',
            backbone=dict(type='TorchvisionBackbone', arch='vgg19', pretrained=pretrained)),
    ])
