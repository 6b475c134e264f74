import torch
import torch.nn.functional as F
from torch import Tensor

from .precision import upcast


def soft_target_ce_loss(logits: Tensor, target_probs: Tensor) -> Tensor:
    """Cross-entropy against a probability target (PS-KD, Kim et al. ICCV 2021).

    ``L = (1/B) Σ_b Σ_c −q_bc · log softmax(z_b)_c``; mean over the batch, sum over classes.
    With a one-hot ``q`` this is the ordinary cross-entropy. fp16 / bf16 logits upcast to fp32.

    Args:
        logits (Tensor): Predicted logits ``z``, shape (B, C).
        target_probs (Tensor): Target distribution ``q``, shape (B, C), rows sum to 1.
            Treated as data: no gradient is sent to it.

    Returns:
        Tensor: Scalar loss.
    """
    if logits.shape != target_probs.shape:
        raise ValueError(f'logits {tuple(logits.shape)} and target_probs '
                         f'{tuple(target_probs.shape)} must have the same shape')
    log_probs = F.log_softmax(upcast(logits), dim=1)  # fp32 under autocast too
    return -(target_probs.detach().to(log_probs.dtype) * log_probs).sum(1).mean()


def one_hot_probs(labels: Tensor, num_classes: int, dtype=torch.float32) -> Tensor:
    """One-hot rows of shape (B, num_classes) for integer ``labels`` of shape (B,)."""
    return F.one_hot(labels, num_classes).to(dtype)
