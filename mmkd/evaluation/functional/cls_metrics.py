r"""Classification metrics of SPEC.md §7 (PS-KD ``utils/metric.py``).

All functions take ``probs`` (n, C), probabilities whose rows sum to 1 (the NLL
takes their logarithms, ``log_probs``), and ``labels`` (n,), integer class
indices, and return Python floats computed in float64. With
:math:`c_i = \max_c p_i(c)` the confidence and
:math:`\hat{y}_i = \arg\max_c p_i(c)` the prediction of sample i.
"""
from typing import Tuple

import numpy as np
import torch
from torch import Tensor


def _check_inputs(probs: Tensor, labels: Tensor, name: str = 'probs') -> None:
    """Raise ``ValueError`` unless ``probs`` (n, C) and ``labels`` (n,) fit."""
    if probs.dim() != 2:
        raise ValueError(f'`{name}` must have shape (n, C), got shape '
                         f'{tuple(probs.shape)}; stack the per-sample '
                         'probability vectors into one 2-D tensor')
    if labels.dim() != 1 or labels.shape[0] != probs.shape[0]:
        raise ValueError(f'`labels` must have shape ({probs.shape[0]},) to '
                         f'match `probs` {tuple(probs.shape)}, got '
                         f'{tuple(labels.shape)}')
    if probs.numel() == 0:
        raise ValueError(f'`{name}` is empty (shape '
                         f'{tuple(probs.shape)}); metrics need at least one '
                         'sample and one class')
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f'`labels` must lie in [0, {probs.shape[1]}), got '
                         f'values in [{int(labels.min())}, '
                         f'{int(labels.max())}]')


def topk_error(probs: Tensor, labels: Tensor, k: int) -> float:
    r"""Top-k error in percent.

    .. math::
        \mathrm{err}_k = 100 \cdot \Big(1 - \frac{1}{n} \sum_i
        \mathbb{1}[y_i \in \mathrm{top}\text{-}k(p_i)]\Big)

    Args:
        probs (Tensor): Probabilities of shape (n, C).
        labels (Tensor): Ground-truth classes of shape (n,).
        k (int): Number of top classes; clamped to C, so top-5 with 3
            classes is 0 %. Ties follow :func:`torch.topk`.

    Returns:
        float: The top-k error in [0, 100].
    """
    _check_inputs(probs, labels)
    if k < 1:
        raise ValueError(f'`k` must be >= 1, got {k}')
    top = probs.topk(min(k, probs.shape[1]), dim=1).indices
    hit = (top == labels[:, None]).any(dim=1)
    return 100.0 * (1.0 - hit.double().mean().item())


def negative_log_likelihood(log_probs: Tensor, labels: Tensor) -> float:
    r"""Mean negative log-likelihood (natural log), from log-probabilities.

    .. math::
        \mathrm{NLL} = -\frac{1}{n} \sum_i \log p_i(y_i)

    Pass ``log_softmax`` of the logits, as cross-entropy on logits uses (the
    reference logs ``nn.CrossEntropyLoss``): a probability that underflows in
    float32 (a logit margin above about 104) still has an exact logarithm, so
    confidently wrong predictions count in full. No floor is applied.

    Args:
        log_probs (Tensor): Log-probabilities of shape (n, C).
        labels (Tensor): Ground-truth classes of shape (n,).

    Returns:
        float: The NLL, >= 0.
    """
    _check_inputs(log_probs, labels, 'log_probs')
    log_p_true = log_probs.double().gather(1, labels.long()[:, None]).squeeze(1)
    return -log_p_true.mean().item()


def ece_bin_edges(num_bins: int) -> Tensor:
    """The B - 1 inner upper bin bounds of the reference, float64 (B,).

    The reference takes its upper bounds from ``np.arange(w, 1 + w, w)``,
    ``w = 1 / B`` (0.1, 0.2, 0.30000000000000004, ..., 0.7000000000000001,
    ... for B = 10); these are its first B - 1 values. Bin b is
    ``(u_{b-1}, u_b]`` with ``u_0 = -inf`` and ``u_B = +inf``.
    """
    width = 1.0 / num_bins
    uppers = np.arange(width, 1 + width, width)[:num_bins - 1]
    return torch.from_numpy(np.ascontiguousarray(uppers, dtype=np.float64))


def ece_bin_index(conf: Tensor, num_bins: int) -> Tensor:
    """0-based ECE bin of each confidence, as the reference bins it.

    The confidence is promoted to float64 (the reference turns its float32
    softmax rows into Python floats) and compared with the float64 bounds of
    :func:`ece_bin_edges`: bin b holds ``u_{b-1} < c <= u_b``. A float32
    confidence of 0.1, 0.2, 0.3, 0.4, 0.6 or 0.8 (0.10000000149 ...) is thus
    above its decimal edge and goes to the next bin up.

    The reference's lower bounds are ``u_b - w`` rather than ``u_{b-1}``; for
    B = 10 that leaves two float64 gaps, (0.2, 0.20000000000000004] and
    (0.6, 0.6000000000000001], which hold no float32 value, and for some B
    (e.g. 6) its last upper bound is 0.9999999999999999. Here the bins are
    contiguous and the last one closed at and above 1, so every confidence is
    counted once; any float32 confidence gets the reference's bin for B = 10.

    Args:
        conf (Tensor): Confidences of shape (n,), any float dtype.
        num_bins (int): Number of bins B.

    Returns:
        Tensor: Bin indices in [0, B) of shape (n,), int64.
    """
    if num_bins < 1:
        raise ValueError(f'`num_bins` must be >= 1, got {num_bins}')
    return torch.bucketize(conf.double(), ece_bin_edges(num_bins).to(conf.device), right=False)


def expected_calibration_error(probs: Tensor,
                               labels: Tensor,
                               num_bins: int = 10) -> float:
    r"""Expected calibration error in percent, equal-width bins.

    Bin b (1-based) is :math:`((b-1)/B, b/B]`, lower-open and upper-closed, with
    the reference's float64 bounds and comparison (:func:`ece_bin_index`; a
    confidence of exactly 0, impossible for a softmax, goes to the first bin).
    With :math:`S_b` the samples whose confidence is in bin b:

    .. math::
        \mathrm{ECE} = 100 \cdot \sum_b \frac{|S_b|}{n}
        \big|\mathrm{acc}(S_b) - \mathrm{conf}(S_b)\big|
        = \frac{100}{n} \sum_b \Big|\sum_{i \in S_b}
        (\mathbb{1}[\hat{y}_i = y_i] - c_i)\Big|

    Empty bins contribute 0.

    Args:
        probs (Tensor): Probabilities of shape (n, C).
        labels (Tensor): Ground-truth classes of shape (n,).
        num_bins (int): Number of bins B. Defaults to 10.

    Returns:
        float: The ECE in [0, 100].
    """
    _check_inputs(probs, labels)
    if num_bins < 1:
        raise ValueError(f'`num_bins` must be >= 1, got {num_bins}')
    conf, pred = probs.max(dim=1)
    bins = ece_bin_index(conf, num_bins)
    gap = (pred == labels).double() - conf.double()
    per_bin = torch.bincount(bins, weights=gap, minlength=num_bins)
    return 100.0 * per_bin.abs().sum().item() / conf.numel()


def aurc_eaurc(probs: Tensor, labels: Tensor) -> Tuple[float, float]:
    r"""Area under the risk-coverage curve and its excess over the optimum.

    Samples are sorted by confidence, descending, with a stable sort (tied
    samples keep their input order, so the result is deterministic). The
    reference reverses ``np.argsort`` (quicksort, not stable), so its order of
    tied samples is arbitrary and its AURC can differ from this one. How much,
    measured (``test_tie_order_spread_stated_in_docstring``): 10,000 samples,
    20 % wrong, 5,000 tied at confidence 1.0 (100 of them wrong) as a
    saturated float32 softmax gives an over-confident model; over 1,000
    random orders of the tied samples AURC spans 54.6 to 60.6 (x1000,
    standard deviation 1.0), and any order lies between 47.5 (tied errors
    last) and 96.5 (first). With
    :math:`(j)` the j-th sample in that order and m the number of errors:

    .. math::
        r_k = \frac{1}{k} \sum_{j \le k}
        \mathbb{1}[\hat{y}_{(j)} \ne y_{(j)}], \quad
        \mathrm{AURC} = \frac{1}{n} \sum_{k=1}^{n} r_k

        \mathrm{AURC}^* = \frac{1}{n} \sum_{i=1}^{m} \frac{i}{n - m + i},
        \quad \mathrm{E\text{-}AURC} = \mathrm{AURC} - \mathrm{AURC}^*

    :math:`\mathrm{AURC}^*` is the exact area when every correct sample is
    ranked first, not the continuous approximation of Geifman et al., which
    is undefined when every sample is wrong.

    Args:
        probs (Tensor): Probabilities of shape (n, C).
        labels (Tensor): Ground-truth classes of shape (n,).

    Returns:
        tuple[float, float]: ``(AURC * 1000, E-AURC * 1000)``.
    """
    _check_inputs(probs, labels)
    conf, pred = probs.max(dim=1)
    order = torch.sort(-conf, stable=True).indices
    wrong = (pred != labels)[order].double()
    n = wrong.numel()
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    aurc = (wrong.cumsum(0) / ranks).mean().item()
    m = int(wrong.sum().item())
    i = ranks[:m]
    aurc_opt = (i / (n - m + i)).sum().item() / n
    return 1000.0 * aurc, 1000.0 * (aurc - aurc_opt)
