"""Cross-head predictions (CrossKD, Wang et al., CVPR 2024): a student's head features from
tower layer i on, passed through the rest of the teacher's head.

mmdet's RetinaNet, ATSS, GFL and FCOS heads (and their kin below) compute each level as
``cls = cls_convs(x); reg = reg_convs(x)`` followed by their prediction convs (and scales,
centerness, FCOS's stride handling). :func:`tower_features` runs the first ``layer`` convs of
both towers; :func:`head_from_layer` runs a head's own ``forward`` from there, with its first
``layer`` tower convs replaced by pass-throughs, so every later step is the head's own code.
With ``frozen=True`` the head's parameters enter as detached tensors
(``torch.func.functional_call``) and its buffers as copies: the result carries gradient to the
input features only, and the head's parameters and running statistics are left untouched.
Implemented from the paper's description.
"""
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from mmdet.models.dense_heads import (ATSSHead, AutoAssignHead, FCOSHead, FreeAnchorRetinaHead,
                                      GFLHead, PAAHead, PISARetinaHead, RetinaHead)
from torch import Tensor, nn
from torch.func import functional_call

# Heads whose forward runs ``cls_convs`` and ``reg_convs`` on each level's feature and nothing
# else before their prediction convs (checked in mmdet 3.3's source); exact types.
CROSS_HEADS = (RetinaHead, FreeAnchorRetinaHead, PISARetinaHead, ATSSHead, PAAHead, GFLHead,
               FCOSHead, AutoAssignHead)
CROSS_HEAD_NAMES: Tuple[str, ...] = tuple(sorted(h.__name__ for h in CROSS_HEADS))

# One level's input to the head from tower layer i: the FPN feature (i = 0) or the pair
# (cls tower feature, reg tower feature) after i convs.
TowerFeature = Union[Tensor, Tuple[Tensor, Tensor]]


class _Pick(nn.Module):
    """Replaces tower conv 0 from layer i > 0 on: takes this tower's feature of the pair."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def forward(self, pair: Tuple[Tensor, Tensor]) -> Tensor:
        return pair[self.index]


def cross_head_unsupported(student_head: nn.Module, teacher_head: nn.Module,
                           layer: int) -> Optional[str]:
    """Why the student's tower features at ``layer`` cannot go through the teacher's head,
    or None when they can: the head type must be one of :data:`CROSS_HEAD_NAMES` (the same
    for both), ``layer`` within both towers, and the channels at that layer equal
    (``in_channels`` for layer 0, else ``feat_channels``)."""
    name = type(teacher_head).__name__
    if type(teacher_head) not in CROSS_HEADS:
        return (f'{name} does not run plain cls_convs / reg_convs towers before its '
                f'predictions (heads that do: {", ".join(CROSS_HEAD_NAMES)})')
    if type(student_head) is not type(teacher_head):
        return f'the student head {type(student_head).__name__} is not a {name}'
    depth = min(student_head.stacked_convs, teacher_head.stacked_convs)
    if int(layer) != layer or not 0 <= layer <= depth:
        return (f'layer must be an integer in [0, {depth}] (the stacked_convs of the student '
                f'{student_head.stacked_convs} and of the teacher {teacher_head.stacked_convs})'
                f', got {layer}')
    key = 'in_channels' if layer == 0 else 'feat_channels'
    s, t = getattr(student_head, key), getattr(teacher_head, key)
    if s != t:
        return (f'at tower layer {layer} the student has {key}={s} and the teacher {t}: the '
                "teacher's layers need the student's channel count")
    return None


def cross_kd_settings(cfg: dict, teacher_head: nn.Module,
                      student_heads: List[nn.Module]) -> dict:
    """``model.cross_kd`` checked against the heads: ``dict(layer, weight)`` with the
    default layer ``teacher stacked_convs − 1``; every error names the key and why."""
    unknown = sorted(set(cfg) - {'layer', 'weight'})
    if unknown:
        raise ValueError(f"model.cross_kd.{unknown[0]} is not a setting; the settings are "
                         "('layer', 'weight')")
    layer = cfg.get('layer', max(getattr(teacher_head, 'stacked_convs', 1) - 1, 0))
    weight = cfg.get('weight', 1.0)
    if not weight >= 0:
        raise ValueError(f'model.cross_kd.weight must be >= 0, got {weight}')
    for k, head in enumerate(student_heads):
        reason = cross_head_unsupported(head, teacher_head, layer)
        if reason is not None:
            raise ValueError(f'model.cross_kd (layer={layer}) cannot pass the head features '
                             f'of model.students[{k}] through the head of model.teacher: '
                             f'{reason}')
    return dict(layer=int(layer), weight=float(weight))


def tower_features(head: nn.Module, feats: Sequence[Tensor], layer: int) -> List[TowerFeature]:
    """Each level's features after the first ``layer`` convs of the head's two towers.

    Args:
        head (nn.Module): A head of :data:`CROSS_HEADS`.
        feats (Sequence[Tensor]): FPN levels, (B, in_channels, H_l, W_l) each.
        layer (int): Tower convs to run, 0 ≤ layer ≤ ``head.stacked_convs``.

    Returns:
        list: Per level the FPN feature itself (layer 0) or ``(cls_feat, reg_feat)``,
        (B, feat_channels, H_l, W_l) each.
    """
    if layer == 0:
        return list(feats)
    out = []
    for x in feats:
        cls_feat, reg_feat = x, x
        for conv in head.cls_convs[:layer]:
            cls_feat = conv(cls_feat)
        for conv in head.reg_convs[:layer]:
            reg_feat = conv(reg_feat)
        out.append((cls_feat, reg_feat))
    return out


@contextmanager
def _towers_from(head: nn.Module, layer: int) -> Iterator[None]:
    """Within the block, the head's towers start at ``layer``: conv 0 picks its tower's
    feature of the input pair, convs 1 … layer−1 pass it on, and later convs keep their
    indices (so parameter names are unchanged)."""
    if layer == 0:
        yield
        return
    saved = head.cls_convs, head.reg_convs
    for attr, index, convs in (('cls_convs', 0, saved[0]), ('reg_convs', 1, saved[1])):
        skipped = [_Pick(index)] + [nn.Identity() for _ in range(layer - 1)]
        setattr(head, attr, nn.ModuleList(skipped + list(convs[layer:])))
    try:
        yield
    finally:
        head.cls_convs, head.reg_convs = saved


def head_from_layer(head: nn.Module, tower_feats: List[TowerFeature], layer: int,
                    frozen: bool = False) -> tuple:
    """The head's raw outputs (as ``head(feats)`` returns them) computed from tower features
    at ``layer`` (:func:`tower_features` of this head or of another head of the same type and
    channels).

    Args:
        head (nn.Module): A head of :data:`CROSS_HEADS`.
        tower_feats (list): Per level the FPN feature (layer 0) or ``(cls_feat, reg_feat)``.
        layer (int): The tower layer the features come from.
        frozen (bool): Run with the head's parameters detached and its buffers copied: no
            gradient reaches the parameters, and no running statistic changes; the gradient
            to ``tower_feats`` still flows. Defaults to False.

    Returns:
        tuple: The head's outputs, e.g. ``(cls_scores, bbox_preds)`` for GFL.
    """
    with _towers_from(head, layer):
        if not frozen:
            return head(tower_feats)
        tensors = {name: p.detach() for name, p in head.named_parameters()}
        tensors.update({name: b.clone() for name, b in head.named_buffers()})
        return functional_call(head, tensors, (tower_feats, ))
