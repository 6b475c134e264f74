"""The README's drop-in snippet: an mmdet project (default_scope='mmdet', COCO data) turns its
detector configs, given as mmdet:: paths, into a KD+ML run by importing mmkd. The packaged
configs' own ImageNet ``init_cfg`` (``torchvision://resnet18``) is exercised: the weight file is
put in the torch hub cache first, as the README says to do on a machine without internet."""
import os
import textwrap

import torch
import torchvision

from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmkd.testing import write_coco_boxes

SNIPPET = '''
_base_ = 'mmdet::_base_/default_runtime.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# Their detector, as shipped with mmdet (ImageNet backbone through its init_cfg).
detector = dict(base='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
                bbox_head=dict(num_classes=1))
model = dict(
    type='mmkd.DetKDMLDistiller',
    teacher=detector,
    students=[detector, detector],
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='PackDetInputs')
]
dataset = dict(type='CocoDataset', data_root='{root}', ann_file='annotations.json',
               data_prefix=dict(img='images/'), metainfo=dict(classes=('polyp', )),
               pipeline=pipeline)
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dataset,
                        sampler=dict(type='DefaultSampler', shuffle=True))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=3, val_interval=100)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.001, momentum=0.9))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
'''


def prefill_resnet18_cache(torch_home) -> dict:
    """Write seeded stand-in 'ImageNet' weights where torchvision://resnet18 is cached."""
    os.makedirs(torch_home / 'hub' / 'checkpoints')
    torch.manual_seed(11)
    state = torchvision.models.resnet18().state_dict()
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    torch.save(state, torch_home / 'hub' / 'checkpoints' / os.path.basename(url))
    return state


def test_mmdet_project_trains_kdml_from_packaged_configs(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    imagenet = prefill_resnet18_cache(tmp_path / 'torch_home')
    root = tmp_path / 'coco'
    write_coco_boxes(str(root), num_images=4, size=96)
    cfg_file = tmp_path / 'their_config.py'
    cfg_file.write_text(textwrap.dedent(SNIPPET).replace('{root}', f'{root}/'))
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.default_scope == 'mmdet'
    cfg.work_dir = str(tmp_path / 'work')
    with DefaultScope.overwrite_default_scope('mmdet'):
        runner = Runner.from_cfg(cfg)
        runner.train()
    model = runner.model
    assert type(model).__name__ == 'DetKDMLDistiller'
    assert [type(s).__name__ for s in model.students] == ['RetinaNet', 'RetinaNet']
    assert (tmp_path / 'work' / 'iter_3.pth').exists()
    # The packaged config freezes the stem and layer1 (frozen_stages=1), so after training they
    # still hold exactly what init_weights loaded: the cached file, in every model.
    for name, detector in model.named_models().items():
        own = detector.backbone.state_dict()
        for key in ('conv1.weight', 'layer1.0.conv1.weight', 'layer1.1.conv2.weight'):
            torch.testing.assert_close(own[key], imagenet[key], msg=f'{name} {key}')
    logged = runner.message_hub.log_scalars
    assert {'train/student0.loss_kd_box', 'train/student1.loss_ml_cls',
            'train/teacher.loss_cls'} <= set(logged)
