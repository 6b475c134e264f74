from typing import Optional

from torch import Tensor

from mmdet.structures.bbox import bbox_overlaps

from .precision import upcast


def box_distance(boxes: Tensor, target_boxes: Tensor, l1_weight: float = 1.0,
                 giou_weight: float = 1.0) -> Tensor:
    """``λ₁·‖b − b̂‖₁ + λ_g·(1 − GIoU(b, b̂))`` per box, shape (N,), for (N, 4) xyxy boxes,
    in fp32 also for half-precision boxes (autocast: normalised coordinates differ in the third
    decimal). No detaching here: callers decide which side is a target."""
    boxes, target_boxes = upcast(boxes), upcast(target_boxes)
    l1 = (boxes - target_boxes).abs().sum(-1)
    giou = bbox_overlaps(boxes, target_boxes, mode='giou', is_aligned=True)
    return l1_weight * l1 + giou_weight * (1 - giou)


def box_kd_loss(student_boxes: Tensor, target_boxes: Tensor, weight: Tensor,
                l1_weight: float = 5.0, giou_weight: float = 2.0,
                avg_factor: Optional[Tensor] = None) -> Tensor:
    """Distillation of decoded boxes, weighted by the target's confidence.

    ``L = Σ_n w_n [λ₁·‖b_n − sg b̂_n‖₁ + λ_g·(1 − GIoU(b_n, sg b̂_n))] / Σ_n w_n``, boxes
    ``(x1, y1, x2, y2)`` normalised by the image size (so λ₁ = 5, λ_g = 2, the DETR-family
    weights, balance), ``w_n`` the target detector's max class probability at location n
    (detached): confident target boxes teach, background locations barely count.

    Args:
        student_boxes (Tensor): (N, 4) predicted boxes, normalised.
        target_boxes (Tensor): (N, 4) target boxes, normalised; detached.
        weight (Tensor): (N,) target confidence; detached.
        l1_weight (float): λ₁. Defaults to 5.0.
        giou_weight (float): λ_g. Defaults to 2.0.
        avg_factor (Tensor, optional): Denominator instead of ``Σ_n w_n`` (e.g. its mean
            over DDP ranks, so that the loss does not depend on how a batch is split).
            Defaults to None.

    Returns:
        Tensor: Scalar loss (0 when the boxes agree).
    """
    if student_boxes.shape != target_boxes.shape or student_boxes.shape[:-1] != weight.shape:
        raise ValueError(f'boxes {tuple(student_boxes.shape)} / {tuple(target_boxes.shape)} '
                         f'and weight {tuple(weight.shape)} do not match')
    per_box = box_distance(student_boxes, target_boxes.detach(), l1_weight, giou_weight)
    weight = upcast(weight.detach())
    denominator = weight.sum() if avg_factor is None else avg_factor
    return (per_box * weight).sum() / denominator.clamp(min=1e-6)
