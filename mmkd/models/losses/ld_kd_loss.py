from typing import Optional

from torch import Tensor
import torch.nn.functional as F

from .precision import upcast


def ld_kd_loss(student_dists: Tensor, target_dists: Tensor, weight: Tensor,
               temperature: float = 10.0, avg_factor: Optional[Tensor] = None) -> Tensor:
    """Localization distillation (LD, Zheng et al. CVPR 2022) for GFL box distributions.

    Each box side is a distribution over ``reg_max + 1`` bins:
    ``L = T² · Σ_n w_n Σ_side KL(softmax(t/T) ‖ softmax(s/T)) / Σ_n w_n``, target detached,
    ``w`` the target's confidence (detached); T = 10 as in the LD paper and mmdet's configs.

    Args:
        student_dists (Tensor): (N, 4, reg_max + 1) bin logits of the predicting head.
        target_dists (Tensor): (N, 4, reg_max + 1) bin logits of the target head.
        weight (Tensor): (N,) location weights.
        temperature (float): T. Defaults to 10.0.
        avg_factor (Tensor, optional): Denominator instead of ``Σ_n w_n``. Defaults to None.

    Returns:
        Tensor: Scalar loss (0 when the distributions agree).
    """
    if student_dists.shape != target_dists.shape:
        raise ValueError(f'student_dists {tuple(student_dists.shape)} and target_dists '
                         f'{tuple(target_dists.shape)} must have the same shape')
    log_p = F.log_softmax(upcast(student_dists) / temperature, -1)  # fp32 under autocast too
    log_q = F.log_softmax(upcast(target_dists.detach()) / temperature, -1)
    kl = (log_q.exp() * (log_q - log_p)).sum((-1, -2))
    weight = upcast(weight.detach())
    denominator = weight.sum() if avg_factor is None else avg_factor
    return (kl * weight).sum() / denominator.clamp(min=1e-6) * temperature**2
