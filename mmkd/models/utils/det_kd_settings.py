"""The distillation settings of :class:`DetKDMLDistiller` checked when it is built: where
boxes are distilled (``model.box_region``), feature KD (``model.feature_kd``) and cross-head
KD (``model.cross_kd``); every error names the config key."""
from typing import List, Optional

from mmengine.logging import print_log
from torch import nn

from .cross_head import cross_kd_settings
from .feature_kd import FeatureKD, feature_kd_settings
from .positive_locations import positives_unsupported

BOX_REGIONS = ('auto', 'positive', 'confident', 'topk', 'all')


def check_box_region(box_region: str, box_region_thr: float, box_region_topk: int) -> None:
    """``model.box_region`` one of :data:`BOX_REGIONS`, ``box_region_thr`` in [0, 1] and
    ``box_region_topk`` an integer >= 1."""
    if box_region not in BOX_REGIONS:
        raise ValueError(f'model.box_region must be one of {BOX_REGIONS}, got '
                         f'{box_region!r}')
    if not 0 <= box_region_thr <= 1:
        raise ValueError(f'model.box_region_thr must be in [0, 1], got {box_region_thr}')
    if int(box_region_topk) != box_region_topk or box_region_topk < 1:
        raise ValueError(f'model.box_region_topk must be an integer >= 1, got '
                         f'{box_region_topk}')


def resolve_box_region(box_region: str, box_region_thr: float,
                       student_heads: List[nn.Module]) -> str:
    """``box_region`` with ``'auto'`` resolved: ``'positive'`` when mmkd reads the
    assignment of every student head, else ``'confident'`` (said in the log). An explicit
    ``'positive'`` with a head whose assignment mmkd cannot read is an error."""
    unread = [(k, positives_unsupported(head)) for k, head in enumerate(student_heads)]
    unread = [(k, reason) for k, reason in unread if reason is not None]
    if box_region == 'positive' and unread:
        k, reason = unread[0]
        raise ValueError(f"model.box_region='positive' needs each student's assignment, "
                         f"but {reason} (model.students[{k}]): use box_region='confident', "
                         "'topk', 'all' or 'auto'")
    if box_region == 'auto':
        box_region = 'confident' if unread else 'positive'
        if unread:
            print_log(f"model.box_region='auto': boxes are distilled where the target's "
                      f'confidence is >= box_region_thr={box_region_thr}, since '
                      f'{unread[0][1]}', logger='current')
    return box_region


def det_feature_kd_settings(cfg: Optional[dict], num_levels: int, has_teacher: bool,
                            num_students: int) -> Optional[FeatureKD]:
    """:func:`feature_kd_settings` of ``model.feature_kd``, None when it is off (None, or
    ``weight=0``); an error when it has no target (no teacher, and no peers)."""
    if cfg is None:
        return None
    settings = feature_kd_settings(cfg, num_levels)
    if settings.weight == 0:
        return None  # off, as kd_weight=0 / ml_weight=0 are
    if not has_teacher and not (settings.peers and num_students > 1):
        raise ValueError('model.feature_kd has no target: there is no model.teacher and '
                         'model.feature_kd.peers is False (or there is one student)')
    return settings


def det_cross_kd_settings(cfg: Optional[dict], teacher_head: Optional[nn.Module],
                          student_heads: List[nn.Module]) -> Optional[dict]:
    """:func:`cross_kd_settings` of ``model.cross_kd``, None when it is off (None, or
    ``weight=0``); an error without a teacher (``teacher_head`` None)."""
    if cfg is None or cfg.get('weight', 1.0) == 0:
        return None  # off, as kd_weight=0 / ml_weight=0 are
    if teacher_head is None:
        raise ValueError('model.cross_kd needs model.teacher: the student features go '
                         "through the teacher's head")
    return cross_kd_settings(cfg, teacher_head, student_heads)
