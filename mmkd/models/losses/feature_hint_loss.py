from torch import Tensor


def feature_hint_loss(feat: Tensor, target_feat: Tensor, reduction: str = 'sum') -> Tensor:
    """Squared L2 hint between an exit's feature and the deepest one (BYOT).

    ``L = Σ_{b,c} (F_bc − sg(F^N)_bc)²`` for ``reduction='sum'`` (the reference code, used with
    weight λ = 1e-6); ``reduction='mean'`` divides by the batch size B (use λ·B to match).

    Args:
        feat (Tensor): Pooled exit feature ``F``, shape (B, D).
        target_feat (Tensor): Pooled deepest feature ``F^N``, shape (B, D); detached.
        reduction (str): ``'sum'`` or ``'mean'`` (over the batch). Defaults to ``'sum'``.

    Returns:
        Tensor: Scalar loss.
    """
    if feat.shape != target_feat.shape:
        raise ValueError(f'feat {tuple(feat.shape)} and target_feat '
                         f'{tuple(target_feat.shape)} must have the same shape')
    sq = (feat - target_feat.detach()).pow(2).sum()
    if reduction == 'sum':
        return sq
    if reduction == 'mean':
        return sq / feat.shape[0]
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
