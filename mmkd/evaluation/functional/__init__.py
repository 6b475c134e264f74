from .box_iou_metrics import (aligned_box_iou, pad_boxes, pad_segments,
                              top1_iou)
from .cls_metrics import (aurc_eaurc, ece_bin_edges, ece_bin_index,
                          expected_calibration_error, negative_log_likelihood,
                          topk_error)
from .det_aggregation import (coco_ap, coco_ground_truth, miou_and_acc,
                              model_names, pad_images, padded_ground_truth,
                              records_top1_iou, unique_images)
from .det_records import (COCO_MAX_DETS, PRED_DTYPE, best_boxes,
                          ground_truth_arrays, rank_in_class)

__all__ = [
    'aurc_eaurc', 'ece_bin_edges', 'ece_bin_index',
    'expected_calibration_error', 'negative_log_likelihood',
    'topk_error', 'aligned_box_iou', 'pad_boxes', 'pad_segments', 'top1_iou',
    'COCO_MAX_DETS', 'PRED_DTYPE', 'best_boxes', 'ground_truth_arrays',
    'rank_in_class', 'coco_ap', 'coco_ground_truth', 'miou_and_acc',
    'model_names', 'pad_images', 'padded_ground_truth', 'records_top1_iou',
    'unique_images'
]
