"""Which detectors :class:`DetKDMLDistiller` can distil location by location: one-stage
detectors with a dense head mmkd decodes, all of one head geometry (type, strides, priors,
classes). Checked on the configs before anything is built, and on the built detectors."""
from typing import Dict

from torch import Tensor, nn

from mmkd.registry import MODELS
from .dense_predictions import DECODING, SUPPORTED_HEADS, unsupported_reason
from .settings_check import model_config_key

# Head settings that must agree for location-wise distillation, read when present.
_GEOMETRY = ('cls_out_channels', 'use_sigmoid_cls', 'num_base_priors', 'reg_max',
             'norm_on_bbox')
_PRIORS = ('strides', 'offset', 'center_offset', 'ratios', 'scales', 'octave_base_scale',
           'scales_per_octave', 'base_sizes', 'base_anchors')


def _plain(value):
    """Tensors (also inside lists and tuples) as nested lists, so that settings compare
    with ``==`` (SSD's anchor generator keeps a list of tensors)."""
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def head_geometry(head) -> Dict[str, object]:
    """The settings of a dense head that fix which location and prior each output is."""
    geometry = {'bbox_head.type': type(head).__name__}
    for name in _GEOMETRY:
        if hasattr(head, name):
            geometry[f'bbox_head.{name}'] = getattr(head, name)
    for name in _PRIORS:
        value = getattr(head.prior_generator, name, None)
        if value is not None:
            geometry[f'bbox_head.prior_generator.{name}'] = _plain(value)
    return geometry


def head_refusal(key: str, head_type: object, reason: str) -> ValueError:
    """The one error for a detector DetKDMLDistiller cannot distil: config key, head type,
    why, and the supported heads."""
    return ValueError(
        f'{key}.bbox_head.type = {head_type!r} cannot be distilled by DetKDMLDistiller '
        f'({reason}): teacher and students must be one-stage detectors with one of the '
        f'dense heads {", ".join(SUPPORTED_HEADS)}')


def check_detector_cfg(cfg: dict, key: str) -> None:
    """Refuse, before anything is built, a detector config without a supported dense head
    (a two-stage detector, DETR-like query heads, CenterNet, YOLOX, ...)."""
    head = cfg.get('bbox_head')
    if not isinstance(head, dict) or any(k in cfg for k in ('rpn_head', 'roi_head')):
        raise head_refusal(key, None, f'{key}.type = {cfg.get("type")!r} is not a one-stage '
                           'detector with a bbox_head')
    head_type = head.get('type')
    head_cls = MODELS.get(head_type) if isinstance(head_type, str) else head_type
    if head_cls is None:
        return  # an unknown type: the build names it
    name = getattr(head_cls, '__name__', head_type)
    if head_cls not in DECODING:
        raise head_refusal(key, name, 'not a dense head whose boxes mmkd decodes')
    loss_type = (head.get('loss_cls') or {}).get('type')
    loss_cls = MODELS.get(loss_type) if isinstance(loss_type, str) else loss_type
    if hasattr(loss_cls, 'get_activation'):  # mmdet's custom-channel losses (v3det)
        raise head_refusal(key, name, f'its loss_cls {loss_cls.__name__} scores classes with '
                           'a custom activation')


def check_head_geometry(detectors: Dict[str, nn.Module]) -> None:
    """Refuse built detectors (name → detector, ``'teacher'``, ``'student{k}'``) that are
    not one-stage detectors with a supported head, or whose heads differ in geometry."""
    for name, det in detectors.items():
        head = getattr(det, 'bbox_head', None)
        if head is None or not hasattr(det, 'extract_feat'):
            raise head_refusal(model_config_key(name), None, f'{type(det).__name__} is not '
                               'a one-stage mmdet detector with a bbox_head')
        reason = unsupported_reason(head)
        if reason is not None:
            raise head_refusal(model_config_key(name), type(head).__name__, reason)
    (ref_name, ref), *others = [(n, head_geometry(d.bbox_head)) for n, d in detectors.items()]
    for name, geometry in others:
        # In head_geometry's order: the type first (when it differs, everything else
        # does too), then the head's settings, then its priors.
        for key in list(ref) + [k for k in geometry if k not in ref]:
            if ref.get(key) != geometry.get(key):
                raise ValueError(
                    f'{model_config_key(name)}.{key} = {geometry.get(key)!r} differs from '
                    f'{model_config_key(ref_name)}.{key} = {ref.get(key)!r}: teacher and '
                    'students need the same head type, strides, priors and classes to distil '
                    'location by location')
