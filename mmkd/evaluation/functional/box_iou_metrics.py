"""Vectorised box metrics of SPEC.md §5.4 on padded batches of images."""
from typing import Sequence, Tuple, Union

import torch
from torch import Tensor


def pad_boxes(tensors: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
    """Stack per-image tensors of different lengths into one padded batch.

    Works for boxes (n_i, 4) as well as scores or labels (n_i, ); the padding
    is zeros and must be ignored through ``valid``.

    Args:
        tensors (Sequence[Tensor]): N tensors of shape (n_i, *), with the same
            trailing shape and dtype; n_i may be 0.

    Returns:
        tuple[Tensor, Tensor]: ``padded`` of shape (N, max_i n_i, *) and
        ``valid``, a bool mask of shape (N, max_i n_i) that is True on the
        real entries.
    """
    if len(tensors) == 0:
        # the trailing shape cannot be inferred from nothing
        raise ValueError('`tensors` must hold at least one tensor')
    return pad_segments(torch.cat(list(tensors)), [len(t) for t in tensors])


def pad_segments(values: Tensor,
                 lengths: Union[Sequence[int], Tensor],
                 padding_value: float = 0.) -> Tuple[Tensor, Tensor]:
    """Split a concatenation of per-image tensors into one padded batch.

    The flat counterpart of :func:`pad_boxes`: image i owns the rows
    ``sum_{k<i} n_k`` to ``sum_{k<=i} n_k - 1`` of ``values``, and
    ``padded[i, :n_i] = values[rows of i]``. One scatter instead of one copy
    per image, and none at all when every n_i is the same.

    Args:
        values (Tensor): The rows of all images one after the other, shape
            (sum_i n_i, *).
        lengths (Sequence[int] | Tensor): n_i of each of the N images; may be
            0, must sum to ``len(values)``.
        padding_value (float): Value of the padded slots. Defaults to 0.

    Returns:
        tuple[Tensor, Tensor]: ``padded`` of shape (N, max_i n_i, *) and
        ``valid``, a bool mask of shape (N, max_i n_i) that is True on the
        real entries.
    """
    counts = lengths.tolist() if isinstance(lengths, Tensor) else lengths
    if sum(counts) != values.size(0) or min(counts, default=0) < 0:
        raise ValueError(
            f'`lengths` must be counts >= 0 that sum to the {values.size(0)} '
            f'rows of `values`, got {list(counts)}')
    num, width = len(counts), max(counts, default=0)
    shape = (num, width) + tuple(values.shape[1:])
    if values.size(0) == num * width:  # every image has `width` rows
        return values.reshape(shape), values.new_ones(
            (num, width), dtype=torch.bool)
    valid = torch.arange(width, device=values.device) < torch.as_tensor(
        counts, dtype=torch.long, device=values.device)[:, None]
    padded = values.new_full(shape, padding_value)
    padded[valid] = values  # a bool mask fills row-major: image by image
    return padded, valid


def aligned_box_iou(boxes1: Tensor,
                    boxes2: Tensor,
                    eps: float = 1e-6) -> Tensor:
    """IoU of boxes paired by broadcasting, in pixel units without the +1.

    The no-+1 convention is mmdet's and pycocotools', so the numbers agree
    with COCO AP.

    Args:
        boxes1 (Tensor): Boxes (x1, y1, x2, y2) of shape (..., 4).
        boxes2 (Tensor): Boxes of a shape broadcastable with ``boxes1``.
        eps (float): Lower bound of the union, so that two degenerate boxes
            give 0 rather than NaN. Defaults to 1e-6.

    Returns:
        Tensor: IoU in [0, 1] of the broadcast shape without the last dim.
    """
    lt = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    rb = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(-1)
    return inter / (area1 + area2 - inter).clamp(min=eps)


def top1_iou(pred_boxes: Tensor, pred_scores: Tensor, pred_valid: Tensor,
             gt_boxes: Tensor, gt_valid: Tensor) -> Tensor:
    """IoU of each image's top-scoring prediction with its best-matching GT.

    ``IoU_j = max_g IoU(b_j^top1, g)`` over the valid GT boxes g of image j
    (SPEC.md §5.4). The top-1 box is chosen by score, not by IoU; among
    equal scores the first one wins. An image without a valid prediction, or
    without a valid GT box, gets 0.

    Args:
        pred_boxes (Tensor): Predicted boxes (x1, y1, x2, y2) of shape
            (N, P, 4), e.g. from :func:`pad_boxes`.
        pred_scores (Tensor): Their scores of shape (N, P).
        pred_valid (Tensor): Bool mask of the real predictions, (N, P).
        gt_boxes (Tensor): GT boxes (x1, y1, x2, y2) of shape (N, G, 4).
        gt_valid (Tensor): Bool mask of the real GT boxes, (N, G).

    Returns:
        Tensor: Float IoU per image of shape (N, ), in [0, 1].
    """
    if pred_boxes.dim() != 3 or pred_boxes.size(-1) != 4:
        raise ValueError('`pred_boxes` must have shape (N, P, 4), got '
                         f'{tuple(pred_boxes.shape)}')
    if gt_boxes.dim() != 3 or gt_boxes.size(-1) != 4:
        raise ValueError('`gt_boxes` must have shape (N, G, 4), got '
                         f'{tuple(gt_boxes.shape)}')
    num_imgs, num_preds = pred_boxes.shape[:2]
    if pred_scores.shape != (num_imgs, num_preds) or \
            pred_valid.shape != (num_imgs, num_preds):
        raise ValueError(
            '`pred_scores` and `pred_valid` must have the shape (N, P) = '
            f'{(num_imgs, num_preds)} of `pred_boxes`, got '
            f'{tuple(pred_scores.shape)} and {tuple(pred_valid.shape)}')
    if gt_boxes.size(0) != num_imgs or \
            gt_valid.shape != gt_boxes.shape[:2]:
        raise ValueError(
            '`gt_boxes` (N, G, 4) and `gt_valid` (N, G) must match N = '
            f'{num_imgs} of `pred_boxes`, got {tuple(gt_boxes.shape)} and '
            f'{tuple(gt_valid.shape)}')
    out = pred_boxes.new_zeros(num_imgs, dtype=torch.float)
    if num_preds == 0 or gt_boxes.size(1) == 0:
        return out  # argmax / max over an empty dim would raise
    pred_valid, gt_valid = pred_valid.bool(), gt_valid.bool()
    # padding gets -inf so that it is never the argmax of an image with at
    # least one real prediction
    scores = pred_scores.float().masked_fill(~pred_valid, float('-inf'))
    top = scores.argmax(dim=1)  # (N, )
    top_boxes = pred_boxes.float().gather(
        1, top[:, None, None].expand(-1, 1, 4))  # (N, 1, 4)
    ious = aligned_box_iou(top_boxes, gt_boxes.float())  # (N, G)
    # IoU >= 0, so filling padded GT with 0 leaves the max over real GT
    best = ious.masked_fill(~gt_valid, 0.).max(dim=1).values
    return torch.where(pred_valid.any(dim=1), best, out)
