from .box_ensemble import (batch_ensemble, pool_nms_ensemble,
                           weighted_boxes_fusion)
from .dense_predictions import DensePredictions, dense_predictions
from .pskd_memory import PSKDMemory

__all__ = [
    'PSKDMemory', 'batch_ensemble', 'pool_nms_ensemble',
    'weighted_boxes_fusion'
]
