_base_ = './kvasir_kdml_v1.py'
# Paper B Table 1 V2 on Kvasir-SEG, online KD + mutual learning: the V1 ResNet-152 GFL teacher
# -> VGG-16 + VGG-19 GFL students.
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
model = dict(students=[
        dict(
            base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
            backbone=dict(
                _delete_=True,
                type='TorchvisionBackbone',
                arch='vgg16',
                out_indices=(1, 2, 3),
                pretrained=pretrained),
            neck=dict(in_channels=[256, 512, 512], start_level=0),
            bbox_head=dict(num_classes=1)),
        dict(
            base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
            backbone=dict(
                _delete_=True,
                type='TorchvisionBackbone',
                arch='vgg19',
                out_indices=(1, 2, 3),
                pretrained=pretrained),
            neck=dict(in_channels=[256, 512, 512], start_level=0),
            bbox_head=dict(num_classes=1)),
])
