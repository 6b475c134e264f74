import torch.nn.functional as F
from torch import Tensor

from .precision import upcast


def kd_kl_div_loss(student_logits: Tensor,
                   teacher_logits: Tensor,
                   temperature: float = 1.0,
                   detach_target: bool = True) -> Tensor:
    """Softened KL divergence of Hinton et al. (2015), ``batchmean`` and ``×T²``.

    ``L = T² · (1/B) Σ_b KL(softmax(t_b/T) ‖ softmax(s_b/T))``
    ``  = T² · (1/B) Σ_b Σ_c q_bc (log q_bc − log p_bc)``, ``q = softmax(t/T)``, ``p = softmax(s/T)``.
    The ``T²`` factor keeps gradient magnitudes independent of ``T``. The value is 0 when the
    logits agree. fp16 / bf16 inputs (autocast) are upcast: computed and returned in fp32.

    Args:
        student_logits (Tensor): Logits of the predicting side ``s``, shape (B, C).
        teacher_logits (Tensor): Logits of the target side ``t``, shape (B, C).
        temperature (float): Softmax temperature ``T`` > 0. Defaults to 1.0.
        detach_target (bool): Send no gradient to ``teacher_logits``. Defaults to True.

    Returns:
        Tensor: Scalar loss.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f'student_logits {tuple(student_logits.shape)} and teacher_logits '
                         f'{tuple(teacher_logits.shape)} must have the same shape')
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if detach_target:
        teacher_logits = teacher_logits.detach()
    # fp32 whatever the autocast dtype: a KL of fp16/bf16 softmaxes loses the small
    # probabilities that carry the dark knowledge.
    log_p = F.log_softmax(upcast(student_logits) / temperature, dim=1)
    log_q = F.log_softmax(upcast(teacher_logits) / temperature, dim=1)
    kl = F.kl_div(log_p, log_q, reduction='batchmean', log_target=True)
    return kl * temperature**2


def reverse_kd_kl_div_loss(student_logits: Tensor,
                           teacher_logits: Tensor,
                           temperature: float = 1.0) -> Tensor:
    """The reverse (mode-seeking) direction ``T² · (1/B) Σ_b KL(p_b ‖ sg q_b)``.

    ``p = softmax(s/T)`` is the predicting side, ``q = softmax(t/T)`` the detached target;
    the value is 0 when the logits agree. Shapes as in :func:`kd_kl_div_loss`.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f'student_logits {tuple(student_logits.shape)} and teacher_logits '
                         f'{tuple(teacher_logits.shape)} must have the same shape')
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    log_p = F.log_softmax(upcast(student_logits) / temperature, dim=1)
    log_q = F.log_softmax(upcast(teacher_logits.detach()) / temperature, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(1).mean() * temperature**2
