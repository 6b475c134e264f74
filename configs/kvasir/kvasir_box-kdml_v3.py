_base_ = './kvasir_box-kdml_v1.py'
# Paper B V3 in its own setting (single box + confidence per image, SPEC §5.3 mode R).
pretrained = False
model = dict(
    teacher=dict(backbone=dict(arch='densenet201', pretrained=pretrained)),
    students=[
        dict(
            type='SingleBoxRegressor',
            backbone=dict(type='TorchvisionBackbone', arch='efficientnet_b0', pretrained=pretrained)),
        dict(
            type='SingleBoxRegressor',
            backbone=dict(type='TorchvisionBackbone', arch='efficientnet_b1', pretrained=pretrained)),
    ])
