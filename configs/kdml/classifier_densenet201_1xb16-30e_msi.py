_base_ = [
    '../_base_/datasets/msi_tiles.py', '../_base_/schedules/sgd_30e_kdml.py',
    '../_base_/default_runtime.py'
]
# Paper B teacher (densenet201) trained alone; its checkpoint feeds the offline KD+ML configs.
# ImageNet weights (torchvision's). tools/train.py --from-scratch starts from random weights
# instead; offline: pre-fill the cache listed by tools/pretrained_weights.py.
pretrained = True
model = dict(
    type='ImageClassifier',
    name='teacher',
    num_classes=2,
    backbone=dict(type='TorchvisionBackbone', arch='densenet201', small_input=False,
                  pretrained=pretrained),
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        pad=0,
        flip=True))
train_dataloader = dict(batch_size=16)
