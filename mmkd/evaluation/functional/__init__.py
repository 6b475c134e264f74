from .cls_metrics import (aurc_eaurc, expected_calibration_error,
                          negative_log_likelihood, topk_error)

__all__ = [
    'aurc_eaurc', 'expected_calibration_error', 'negative_log_likelihood',
    'topk_error'
]
