"""mmdet 3.3's packaged one-stage detector configs, shrunk so that a test can train each one.

"One-stage" here: the config's ``model`` has a ``bbox_head`` and neither an ``rpn_head`` nor
a ``roi_head``. That takes in every ``SingleStageDetector`` (RetinaNet, FCOS, GFL, ..., also
YOLOX, CenterNet, CornerNet, the one-stage instance segmentors and mmdet's own LD / LAD
distillers) and the DETR family (their ``bbox_head`` is a query head), which mmkd refuses.
"""
import copy
import glob
import json
import os
import os.path as osp
import tempfile
from typing import Dict, List, Tuple

import mmdet
from mmengine.config import Config

CONFIG_ROOT = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
WIDTH = 64  # neck and head channels of the light models (GN's 32 groups: 2 channels each)
BASE = 16  # base channels of their ResNet-18 (stages 16, 32, 64, 128)
# Settings that change widths and depths only: configs that differ in nothing else train the
# same head code, so one of them stands for all (RTMDet tiny ... x).
_WIDTHS = ('in_channels', 'out_channels', 'feat_channels', 'widen_factor', 'deepen_factor',
           'num_csp_blocks', 'expand_ratio')


def one_stage_configs() -> Dict[str, dict]:
    """``{config path relative to mmdet's configs: model dict}`` for every packaged config
    that loads here and is one-stage (module docstring). Configs that do not load without
    other OpenMMLab packages (mmpretrain's ConvNeXt, ByteTrack's missing base) are two-stage
    or tracking configs."""
    models = {}
    # mmengine writes and deletes a temporary copy of every config and base file it reads
    # (about 5 per config): on a busy disk that is most of the time, so use RAM when we can.
    saved, shm = tempfile.tempdir, '/dev/shm'
    if osp.isdir(shm) and os.access(shm, os.W_OK):
        tempfile.tempdir = shm
    try:
        for path in sorted(glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)):
            if f'{osp.sep}_base_{osp.sep}' in path:
                continue
            try:
                model = Config.fromfile(path).get('model')
            except (ImportError, FileNotFoundError):
                continue
            if (isinstance(model, dict) and 'bbox_head' in model
                    and not any(k in model for k in ('rpn_head', 'roi_head'))):
                models[osp.relpath(path, CONFIG_ROOT)] = model.to_dict()
    finally:
        tempfile.tempdir = saved
    return models


def _first_neck(model: dict):
    neck = model.get('neck')
    return neck[0] if isinstance(neck, list) else neck


def light_detector(model: dict) -> Tuple[dict, dict, int]:
    """A packaged model made cheap to train on CPU, as (detector, data_preprocessor, image
    size): the backbone replaced by a ResNet-18 of ``BASE`` base channels (``init_cfg=None``,
    so nothing is downloaded) feeding the neck the same number of levels at the same strides;
    neck and head narrowed to ``WIDTH`` channels and one block / stacked conv; one class; no
    batch augments (they resize to 480–800 px). Otherwise the neck and the head are the
    config's.

    The image size is 64 px except where the head needs larger maps: SSD's unpadded extra
    layers need its ``input_size`` (300 / 512); NAS-FPN and FPG pool at stride 128 (256 px);
    BN in the head needs 2 values per channel at the coarsest level (2 × the largest
    stride, batch 1); heads with deformable convs on every level (DDOD,
    ``dcn_on_last_conv``) need ≥ 3 px there (mmcv's CPU op): 384 px.
    """
    model = copy.deepcopy(model)
    preprocessor = model.pop('data_preprocessor')
    preprocessor.pop('batch_augments', None)
    head, neck = model['bbox_head'], _first_neck(model)
    head['num_classes'] = 1
    if 'num_classes' in head.get('loss_cls', {}):
        head['loss_cls']['num_classes'] = 1
    if isinstance(neck, dict) and 'in_channels' in neck:
        _resnet18_backbone(model, neck, head)
    _narrow(model)
    priors = head.get('anchor_generator', head.get('prior_generator', {}))
    stride = max((max(s) if isinstance(s, (list, tuple)) else s
                  for s in priors.get('strides', [64])), default=64)
    size = 64
    if neck and neck.get('type') == 'SSDNeck':
        size = priors.get('input_size', size)  # SSDLite's padded extra layers take 64
    if neck and neck.get('type') in ('NASFPN', 'FPG'):
        size = 256
    if 'BN' in str(head.get('norm_cfg', {}).get('type')):
        size = max(size, 2 * stride)
    if head.get('dcn_on_last_conv') or (head['type'] == 'DDODHead' and head.get('use_dcn', True)):
        size = 3 * stride
    return model, preprocessor, size


def _narrow(model: dict) -> None:
    """Necks and heads at ``WIDTH`` channels with one block / stacked conv (SSD's per-level
    channel tuples stay): the same layers and code paths, a fraction of the arithmetic."""
    necks = model.get('neck')
    for i, neck in enumerate(necks if isinstance(necks, list) else [necks]):
        if not isinstance(neck, dict):
            continue
        for key in ('out_channels', 'inter_channels', 'block_mid_channels') + (
                ('in_channels', ) if i > 0 else ()):
            if isinstance(neck.get(key), int):
                neck[key] = WIDTH
        for key in ('num_blocks', 'stack_times'):  # DyHead, NAS-FPN
            if neck['type'] in ('DyHead', 'NASFPN') and key in neck:
                neck[key] = 1
    head = model['bbox_head']
    for key in ('in_channels', 'feat_channels'):
        if isinstance(head.get(key), int):
            head[key] = WIDTH
    if head.get('stacked_convs', 0) > 1:
        head['stacked_convs'] = 1


def _resnet18_backbone(model: dict, neck: dict, head: dict) -> None:
    levels = len(neck['in_channels']) if isinstance(neck['in_channels'], (list, tuple)) else 1
    first = 4 - levels  # the neck reads the last `levels` of the strides 4, 8, 16, 32
    if neck['type'] == 'SSDNeck':
        # SSD reads its first maps at the first anchor strides (VGG: 8, 16; SSDLite: 16, 32).
        first = int(head['anchor_generator']['strides'][0]).bit_length() - 3
    indices = tuple(range(first, first + levels))
    # GN necks (RTMDet-Swin's CSPNeXt PAFPN halves its inputs) need 32-group-able widths
    base = 64 if 'GN' in str(neck.get('norm_cfg')) else BASE
    channels = [base * 2**i for i in indices]
    model['backbone'] = dict(type='ResNet', depth=18, base_channels=base, num_stages=4,
                             out_indices=indices, style='pytorch', norm_cfg=dict(type='BN'),
                             norm_eval=False, init_cfg=None)
    if isinstance(neck['in_channels'], (list, tuple)):
        neck['in_channels'] = channels
        if neck['type'] == 'SSDNeck':  # SSDNeck passes its inputs through as the first maps
            neck['out_channels'] = channels + list(neck['out_channels'][levels:])
            head['in_channels'] = neck['out_channels']
    else:
        neck['in_channels'] = channels[-1]


def _widthless(value):
    if isinstance(value, dict):
        return {k: _widthless(v) for k, v in value.items() if k not in _WIDTHS}
    if isinstance(value, (list, tuple)):
        return [_widthless(v) for v in value]
    return value


def group_configs(models: Dict[str, dict]) -> Dict[str, List[str]]:
    """Configs grouped by their light model (:func:`light_detector`), ignoring the data
    preprocessor (normalisation), ``test_cfg`` and widths: ``{representative: [configs]}``,
    the representative being the first path in sorted order. Schedules and datasets are
    outside ``model``, so configs that differ only there fall in one group."""
    groups: Dict[str, List[str]] = {}
    keys: Dict[str, str] = {}
    for path in sorted(models):
        detector, _, size = light_detector(models[path])
        detector.pop('test_cfg', None)
        key = json.dumps([_widthless(detector), size], sort_keys=True, default=str)
        groups.setdefault(keys.setdefault(key, path), []).append(path)
    return groups
