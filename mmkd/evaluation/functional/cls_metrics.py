r"""Classification metrics of SPEC.md §7 (PS-KD ``utils/metric.py``).

All functions take ``probs`` (n, C), probabilities whose rows sum to 1, and
``labels`` (n,), integer class indices, and return Python floats computed in
float64. With :math:`c_i = \max_c p_i(c)` the confidence and
:math:`\hat{y}_i = \arg\max_c p_i(c)` the prediction of sample i.
"""
from typing import Tuple

import torch
from torch import Tensor


def _check_inputs(probs: Tensor, labels: Tensor) -> None:
    """Raise ``ValueError`` unless ``probs`` (n, C) and ``labels`` (n,) fit."""
    if probs.dim() != 2:
        raise ValueError('`probs` must have shape (n, C), got shape '
                         f'{tuple(probs.shape)}; stack the per-sample '
                         'probability vectors into one 2-D tensor')
    if labels.dim() != 1 or labels.shape[0] != probs.shape[0]:
        raise ValueError(f'`labels` must have shape ({probs.shape[0]},) to '
                         f'match `probs` {tuple(probs.shape)}, got '
                         f'{tuple(labels.shape)}')
    if probs.numel() == 0:
        raise ValueError('`probs` is empty (shape '
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


def negative_log_likelihood(probs: Tensor,
                            labels: Tensor,
                            eps: float = 1e-12) -> float:
    r"""Mean negative log-likelihood (natural log).

    .. math::
        \mathrm{NLL} = \frac{1}{n} \sum_i -\ln \max(p_i(y_i), \epsilon)

    Args:
        probs (Tensor): Probabilities of shape (n, C).
        labels (Tensor): Ground-truth classes of shape (n,).
        eps (float): Floor on :math:`p_i(y_i)` so that a zero probability
            gives a finite value. Defaults to 1e-12.

    Returns:
        float: The NLL, >= 0.
    """
    _check_inputs(probs, labels)
    p_true = probs.double().gather(1, labels.long()[:, None]).squeeze(1)
    return -p_true.clamp_min(eps).log().mean().item()


def expected_calibration_error(probs: Tensor,
                               labels: Tensor,
                               num_bins: int = 10) -> float:
    r"""Expected calibration error in percent, equal-width bins.

    Bin b (1-based) is :math:`((b-1)/B, b/B]`, lower-open and upper-closed
    (a confidence of exactly 0, impossible for a softmax, goes to the first
    bin). With :math:`S_b` the samples whose confidence is in bin b:

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
    # Edges b/B are rounded to the dtype of `probs`, as PS-KD compares its
    # float32 confidences with them: a float32 0.2 then lands in (0.1, 0.2].
    edges = (torch.arange(1, num_bins, dtype=torch.float64) /
             num_bins).to(conf)
    bins = torch.bucketize(conf, edges, right=False)
    gap = (pred == labels).double() - conf.double()
    per_bin = torch.bincount(bins, weights=gap, minlength=num_bins)
    return 100.0 * per_bin.abs().sum().item() / conf.numel()


def aurc_eaurc(probs: Tensor, labels: Tensor) -> Tuple[float, float]:
    r"""Area under the risk-coverage curve and its excess over the optimum.

    Samples are sorted by confidence, descending, with a stable sort (tied
    samples keep their input order, so the result is deterministic). With
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
