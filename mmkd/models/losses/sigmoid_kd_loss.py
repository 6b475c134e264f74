from torch import Tensor
import torch.nn.functional as F

from .precision import upcast


def sigmoid_kd_loss(student_logits: Tensor, teacher_logits: Tensor,
                    temperature: float = 1.0, weight: Tensor = None) -> Tensor:
    """Binary (per-class sigmoid) KD for dense detector classification scores.

    ``L = T² · Σ_n w_n Σ_c KL_bin(σ(t_nc/T) ‖ σ(s_nc/T)) / Σ_n w_n`` with
    ``KL_bin(q ‖ p) = q log(q/p) + (1 − q) log((1 − q)/(1 − p))``, the teacher detached;
    ``w = 1`` by default (mean over locations). 0 when the logits agree. fp16 / bf16 inputs upcast to fp32 (also under
    autocast). Sigmoid heads
    (RetinaNet, FCOS, ATSS, GFL) score each class independently, hence not a softmax KL.

    Args:
        student_logits (Tensor): (N, C) logits of the predicting detector.
        teacher_logits (Tensor): (N, C) logits of the target detector.
        temperature (float): T. Defaults to 1.0.
        weight (Tensor, optional): (N,) location weights. Defaults to None.

    Returns:
        Tensor: Scalar loss.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f'student_logits {tuple(student_logits.shape)} and teacher_logits '
                         f'{tuple(teacher_logits.shape)} must have the same shape')
    # fp32 also under autocast: fp16/bf16 BCE terms cancel badly near agreement.
    s = upcast(student_logits) / temperature
    t = upcast(teacher_logits.detach()) / temperature
    q = t.sigmoid()
    # BCE(p, q) − H(q): the entropy term makes the value 0 at agreement, gradient unchanged.
    kl = (F.binary_cross_entropy_with_logits(s, q, reduction='none') -
          F.binary_cross_entropy_with_logits(t, q, reduction='none')).sum(1)
    if weight is None:
        return kl.mean() * temperature**2
    weight = upcast(weight.detach())
    return (kl * weight).sum() / weight.sum().clamp(min=1e-6) * temperature**2
