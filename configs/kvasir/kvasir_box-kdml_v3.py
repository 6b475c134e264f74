_base_ = './kvasir_box-kdml_v1.py'
# Paper B V3 in its own setting (single box + confidence per image, SPEC §5.3 mode R).
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
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
