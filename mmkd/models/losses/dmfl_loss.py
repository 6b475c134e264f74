from torch import Tensor

from .kd_kl_div_loss import kd_kl_div_loss


def dmfl_loss(feat_map: Tensor,
              target_feat_map: Tensor,
              temperature: float = 1.0,
              mode: str = 'channel',
              detach_target: bool = True,
              legacy_no_grad: bool = False) -> Tensor:
    """Deep mutual feature learning term of one exit (paper A, SPEC §4.3), with gradient.

    ``L = τ² · [KL(sg P_N ‖ P_i) + KL(sg P_i ‖ P_N)]`` averaged as below, where
    ``mode='channel'``: ``P = softmax(GAP(F)/τ)`` over channels, mean over the batch (the
    reference definition); ``mode='spatial'``: per channel, softmax over the H·W positions of the
    un-pooled map (channel-wise distillation style), mean over batch and channels.
    With ``detach_target`` each direction moves only its predicting side (DML convention).

    The reference code built this term with ``torch.tensor(list)``, which drops the autograd
    history: it was logged but sent no gradient. ``legacy_no_grad=True`` reproduces that
    (same features, channel softmax at τ = 1, both directions, mean over the exits). The value
    logged is the KL in both settings; the reference logged the cross-entropy form
    ``CE(sg P_N, F_i) + CE(sg P_i, F_N)``, larger by the entropies ``H(P_N) + H(P_i)``, which
    carry no gradient either.

    Args:
        feat_map (Tensor): Exit feature map ``F_i``, shape (B, D, H, W).
        target_feat_map (Tensor): Deepest feature map ``F_N``, shape (B, D, H', W'); H', W'
            may differ from H, W in ``'channel'`` mode, which pools both maps (the reference's
            2- and 3-stage networks compare 4x4 branch maps with a larger last-stage map).
        temperature (float): Softmax temperature ``τ``. Defaults to 1.0.
        mode (str): ``'channel'`` or ``'spatial'``. Defaults to ``'channel'``.
        detach_target (bool): Detach the target side of each KL. Defaults to True.
        legacy_no_grad (bool): Return a value without gradient. Defaults to False.

    Returns:
        Tensor: Scalar loss (0 when the two distributions agree).
    """
    compared = 2 if mode == 'channel' else 4  # channel mode pools H, W away
    if (feat_map.dim() != 4 or target_feat_map.dim() != 4
            or feat_map.shape[:compared] != target_feat_map.shape[:compared]):
        raise ValueError(f'feat_map {tuple(feat_map.shape)} and target_feat_map '
                         f'{tuple(target_feat_map.shape)} must be 4-D with the same '
                         + ('(B, D)' if mode == 'channel' else 'shape'))
    if mode == 'channel':
        a, b = feat_map.mean((2, 3)), target_feat_map.mean((2, 3))
    elif mode == 'spatial':
        a, b = feat_map.flatten(2).flatten(0, 1), target_feat_map.flatten(2).flatten(0, 1)
    else:
        raise ValueError(f"mode must be 'channel' or 'spatial', got {mode!r}")
    loss = (kd_kl_div_loss(a, b, temperature, detach_target) +
            kd_kl_div_loss(b, a, temperature, detach_target))
    return loss.detach() if legacy_no_grad else loss
