"""Settings and channel adapters of the FPN feature distillation of :class:`DetKDMLDistiller`
(``model.feature_kd``), checked when the model is built."""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

from torch import nn

FEATURE_KD_TYPES = ('pkd', 'cwd')
_KEYS = ('type', 'weight', 'levels', 'level_weights', 'tau', 'peers')


class FeatureKD(NamedTuple):
    """``model.feature_kd`` resolved: the loss type, its weight, the FPN levels and their
    weights, the CWD temperature (None for PKD) and whether peers are targets too."""
    type: str
    weight: float
    levels: Tuple[int, ...]
    level_weights: Tuple[float, ...]
    tau: Optional[float]
    peers: bool


def feature_kd_settings(cfg: dict, num_levels: int) -> FeatureKD:
    """``model.feature_kd`` checked, with defaults filled in; every error names the key.

    Args:
        cfg (dict): ``dict(type='pkd' | 'cwd', weight=1.0, levels=(0, …, L−1),
            level_weights=(1.0, …), tau=1.0 (CWD only), peers=False)``.
        num_levels (int): FPN levels of the detectors (L).
    """
    key = 'model.feature_kd'
    unknown = sorted(set(cfg) - set(_KEYS))
    if unknown:
        raise ValueError(f'{key}.{unknown[0]} is not a setting; the settings are {_KEYS}')
    kind = cfg.get('type')
    if kind not in FEATURE_KD_TYPES:
        raise ValueError(f'{key}.type must be one of {FEATURE_KD_TYPES}, got {kind!r}')
    weight = cfg.get('weight', 1.0)
    if not weight >= 0:
        raise ValueError(f'{key}.weight must be >= 0, got {weight}')
    levels = tuple(cfg.get('levels', range(num_levels)))
    if not levels or len(set(levels)) != len(levels) or any(
            int(lv) != lv or not 0 <= lv < num_levels for lv in levels):
        raise ValueError(f'{key}.levels must be distinct FPN level indices in '
                         f'[0, {num_levels - 1}] (the detectors have {num_levels} levels), '
                         f'got {levels}')
    level_weights = tuple(cfg.get('level_weights') or (1.0, ) * len(levels))
    if len(level_weights) != len(levels) or any(not w >= 0 for w in level_weights):
        raise ValueError(f'{key}.level_weights must give one weight >= 0 per level of '
                         f'{key}.levels={levels}, got {level_weights}')
    tau = cfg.get('tau')
    if kind == 'pkd' and tau is not None:
        raise ValueError(f"{key}.tau is a setting of type='cwd' only (PKD has no "
                         'temperature): remove it')
    if kind == 'cwd':
        tau = 1.0 if tau is None else tau
        if not tau > 0:
            raise ValueError(f'{key}.tau must be > 0, got {tau}')
    peers = cfg.get('peers', False)
    if not isinstance(peers, bool):
        raise ValueError(f'{key}.peers must be True or False, got {peers!r}')
    return FeatureKD(kind, float(weight), tuple(int(lv) for lv in levels),
                     tuple(float(w) for w in level_weights), tau, peers)


def build_adapters(channels: Dict[str, Sequence[int]], settings: FeatureKD) -> nn.ModuleDict:
    """The 1×1 convs that map a student's FPN channels to a target's where they differ:
    ``adapters['student{k}'][target]`` is a ModuleList with one module per distilled level
    (a conv where the channel counts of that level differ, else the identity), for the
    teacher and (``peers=True``) every other student; targets with the student's channel
    counts on every distilled level get no entry, students without such targets none.

    Args:
        channels (dict): FPN channels per level by model name (``'teacher'``,
            ``'student{k}'``).
        settings (FeatureKD): The resolved ``model.feature_kd``.
    """
    students = [name for name in channels if name.startswith('student')]
    adapters = nn.ModuleDict()
    for name in students:
        targets = (['teacher'] if 'teacher' in channels else []) + (
            [p for p in students if p != name] if settings.peers else [])
        own = nn.ModuleDict()
        for target in targets:
            pairs = [(channels[name][lv], channels[target][lv]) for lv in settings.levels]
            if any(s != t for s, t in pairs):
                own[target] = nn.ModuleList(
                    nn.Conv2d(s, t, 1) if s != t else nn.Identity() for s, t in pairs)
        if len(own):
            adapters[name] = own
    return adapters


def level_channels(head: nn.Module) -> Tuple[int, ...]:
    """The FPN channels of each level a dense head reads (``in_channels``: one number for
    all levels, or one per level as YOLOv3's)."""
    channels = head.in_channels
    if isinstance(channels, (list, tuple)):
        return tuple(channels)
    return (channels, ) * head.prior_generator.num_levels
