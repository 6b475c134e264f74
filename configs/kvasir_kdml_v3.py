_base_ = './kvasir_kdml_v1.py'
# Paper B Table 1 V3 on Kvasir-SEG (the main job), online KD + mutual learning: DenseNet-201
# teacher -> EfficientNet-B0 + B1 students, each an mmdet GFL detector (FPN strides 8-128) on
# its own torchvision backbone; box regression is distilled too (decoded-box L1 + GIoU weighted
# by the target's confidence, and LD on GFL's side distributions).
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
model = dict(
    teacher=dict(
        backbone=dict(arch='densenet201', pretrained=pretrained),
        neck=dict(in_channels=[512, 1792, 1920])),
    students=[
        dict(
            base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
            backbone=dict(
                _delete_=True,
                type='TorchvisionBackbone',
                arch='efficientnet_b0',
                out_indices=(1, 2, 3),
                pretrained=pretrained),
            neck=dict(in_channels=[40, 112, 1280], start_level=0),
            bbox_head=dict(num_classes=1)),
        dict(
            base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
            backbone=dict(
                _delete_=True,
                type='TorchvisionBackbone',
                arch='efficientnet_b1',
                out_indices=(1, 2, 3),
                pretrained=pretrained),
            neck=dict(in_channels=[40, 112, 1280], start_level=0),
            bbox_head=dict(num_classes=1)),
    ])
