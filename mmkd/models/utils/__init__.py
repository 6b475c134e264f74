from .box_ensemble import (batch_ensemble, pool_nms_ensemble,
                           weighted_boxes_fusion)
from .cross_head import (CROSS_HEAD_NAMES, cross_head_unsupported, cross_kd_settings,
                         head_from_layer, tower_features)
from .dense_predictions import (DECODING, SUPPORTED_HEADS, DensePredictions, dense_predictions,
                                unsupported_reason)
from .feature_kd import (FEATURE_KD_TYPES, FeatureKD, build_adapters, feature_kd_settings,
                         level_channels)
from .finite_loss import FiniteLossMixin, NonFiniteLossError, check_finite_loss
from .pskd_memory import PSKDMemory

__all__ = [
    'CROSS_HEAD_NAMES', 'cross_head_unsupported', 'cross_kd_settings', 'head_from_layer',
    'tower_features',
    'FEATURE_KD_TYPES', 'FeatureKD', 'build_adapters', 'feature_kd_settings',
    'level_channels',
    'DECODING', 'DensePredictions', 'SUPPORTED_HEADS', 'dense_predictions', 'unsupported_reason',
    'FiniteLossMixin', 'NonFiniteLossError', 'PSKDMemory', 'batch_ensemble', 'check_finite_loss',
    'pool_nms_ensemble', 'weighted_boxes_fusion'
]
