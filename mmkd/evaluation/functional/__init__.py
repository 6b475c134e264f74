from .box_iou_metrics import (aligned_box_iou, pad_boxes, pad_segments,
                              top1_iou)
from .cls_metrics import (aurc_eaurc, ece_bin_edges, ece_bin_index,
                          expected_calibration_error, negative_log_likelihood,
                          topk_error)

__all__ = [
    'aurc_eaurc', 'ece_bin_edges', 'ece_bin_index',
    'expected_calibration_error', 'negative_log_likelihood',
    'topk_error', 'aligned_box_iou', 'pad_boxes', 'pad_segments', 'top1_iou'
]
