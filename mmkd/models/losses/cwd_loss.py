import torch.nn.functional as F
from torch import Tensor

from .precision import upcast


def cwd_loss(student_feats: Tensor, teacher_feats: Tensor,
             temperature: float = 1.0) -> Tensor:
    """Channel-wise distillation (CWD, Shu et al., ICCV 2021, "Channel-wise Knowledge
    Distillation for Dense Prediction").

    Each channel c of image n becomes a distribution over its H·W positions,
    ``φ(y)_{n,c,i} = exp(y_{n,c,i} / T) / Σ_j exp(y_{n,c,j} / T)``, and
    ``L = T² / (N·C) · Σ_{n,c} Σ_i φ(sg t)_{n,c,i} · log(φ(sg t)_{n,c,i} / φ(s)_{n,c,i})``:
    KL(teacher ‖ student) summed over positions, averaged over channels and images. The
    teacher is detached; fp16 / bf16 inputs are upcast to fp32.

    Args:
        student_feats (Tensor): (N, C, H, W) student features (after the channel adapter when
            the channel counts differ).
        teacher_feats (Tensor): (N, C, H, W) target features; detached.
        temperature (float): T. Defaults to 1.0.

    Returns:
        Tensor: Scalar loss (0 when every channel's spatial softmax agrees).
    """
    if student_feats.shape != teacher_feats.shape or student_feats.dim() != 4:
        raise ValueError(f'student_feats {tuple(student_feats.shape)} and teacher_feats '
                         f'{tuple(teacher_feats.shape)} must be (N, C, H, W) of one shape')
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    n, c = student_feats.shape[:2]
    log_p = F.log_softmax(upcast(student_feats).flatten(2) / temperature, -1)
    log_q = F.log_softmax(upcast(teacher_feats.detach()).flatten(2) / temperature, -1)
    return (log_q.exp() * (log_q - log_p)).sum() / (n * c) * temperature**2
