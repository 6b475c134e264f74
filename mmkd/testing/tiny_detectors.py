"""Tiny mmdet detectors built from mmdet's own packaged configs, for tests and benchmarks."""

MMDET_CONFIGS = {
    'gfl': 'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    'retinanet': 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
    'fcos': 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'atss': 'mmdet::atss/atss_r50_fpn_1x_coco.py',
}


def tiny_detector(head: str = 'gfl', width: int = 8, num_classes: int = 1) -> dict:
    """``dict(base='mmdet::<head config>', ...)`` shrunk to a ResNet-18 of ``width`` base
    channels, an FPN of 4·width channels and one stacked conv per head branch."""
    chans = [width * 2, width * 4, width * 8]
    return dict(
        base=MMDET_CONFIGS[head],
        backbone=dict(_delete_=True, type='ResNet', depth=18, base_channels=width,
                      num_stages=4, out_indices=(1, 2, 3), norm_cfg=dict(type='BN'),
                      norm_eval=False, style='pytorch', init_cfg=None),
        # start_level=0: the FPN starts at C3 (stride 8), as the heads' priors assume; the
        # packaged configs' start_level=1 skips C2, which out_indices already leaves out.
        neck=dict(in_channels=chans, out_channels=4 * width, start_level=0),
        bbox_head=dict(num_classes=num_classes, in_channels=4 * width,
                       feat_channels=4 * width, stacked_convs=1))


def tiny_det_distiller(head: str = 'gfl', **kwargs):
    """A built, initialised ``DetKDMLDistiller`` of :func:`tiny_detector` models (teacher of
    width 16, two students of width 8, one class), seeded; ``kwargs`` update its config."""
    import torch
    from mmkd.registry import MODELS
    cfg = dict(type='DetKDMLDistiller', teacher=tiny_detector(head, 16),
               students=[tiny_detector(head, 8), tiny_detector(head, 8)],
               data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                                      std=[255, 255, 255], pad_size_divisor=32))
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def tiny_det_batch(n: int = 2, size: int = 64) -> tuple:
    """``(inputs in [0, 1] of shape (n, 3, size, size), data samples)``, one box of class 0
    per image, seeded."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for _ in range(n):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size), scale_factor=(1.0, 1.0),
                                        batch_input_shape=(size, size)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[10., 12., 40., 50.]]),
                                      labels=torch.tensor([0]))
        samples.append(s)
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, 3, size, size, generator=g), samples
