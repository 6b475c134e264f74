from torch import Tensor

from .precision import upcast


def standardize_channels(feats: Tensor, eps: float = 1e-6) -> Tensor:
    """Each channel of (N, C, H, W) ``feats`` shifted to mean 0 and scaled to variance 1 over
    its N·H·W values (population variance): ``x̂ = (x − μ_c) / sqrt(σ²_c + eps)``."""
    mean = feats.mean((0, 2, 3), keepdim=True)
    var = feats.var((0, 2, 3), unbiased=False, keepdim=True)
    return (feats - mean) / (var + eps).sqrt()


def pkd_loss(student_feats: Tensor, teacher_feats: Tensor, eps: float = 1e-6) -> Tensor:
    """PKD feature distillation (Cao et al., NeurIPS 2022, "PKD: General Distillation
    Framework for Object Detectors via Pearson Correlation Coefficient").

    Both feature maps are standardised channel by channel over the batch and positions
    (:func:`standardize_channels`: zero mean, unit variance over N·H·W), then
    ``L = 1 / (2·N·C·H·W) · Σ (ŝ − sg t̂)²``. With unit variances this is
    ``mean_c (1 − r_c)``, one minus the Pearson correlation coefficient ``r_c`` of channel c
    between student and teacher (0 for perfectly correlated channels, 2 for anti-correlated
    ones), so only the relational pattern of the teacher's features is imitated, not their
    magnitude: a student channel ``a·t + b`` with ``a > 0`` costs nothing. The teacher is
    detached; fp16 / bf16 inputs are upcast to fp32.

    Args:
        student_feats (Tensor): (N, C, H, W) student features (after the channel adapter when
            the channel counts differ).
        teacher_feats (Tensor): (N, C, H, W) target features; detached.
        eps (float): Added to the variances. Defaults to 1e-6.

    Returns:
        Tensor: Scalar loss in [0, 2] (up to eps).
    """
    if student_feats.shape != teacher_feats.shape or student_feats.dim() != 4:
        raise ValueError(f'student_feats {tuple(student_feats.shape)} and teacher_feats '
                         f'{tuple(teacher_feats.shape)} must be (N, C, H, W) of one shape')
    s = standardize_channels(upcast(student_feats), eps)
    t = standardize_channels(upcast(teacher_feats.detach()), eps)
    return (s - t).pow(2).mean() / 2
