from .box_ensemble import (batch_ensemble, pool_nms_ensemble,
                           weighted_boxes_fusion)
from .dense_predictions import DensePredictions, dense_predictions
from .finite_loss import FiniteLossMixin, NonFiniteLossError, check_finite_loss
from .pskd_memory import PSKDMemory

__all__ = [
    'FiniteLossMixin', 'NonFiniteLossError', 'PSKDMemory', 'batch_ensemble', 'check_finite_loss',
    'pool_nms_ensemble', 'weighted_boxes_fusion'
]
