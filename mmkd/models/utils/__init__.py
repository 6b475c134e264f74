from .dense_predictions import DensePredictions, dense_predictions
from .pskd_memory import PSKDMemory

__all__ = ['PSKDMemory']
