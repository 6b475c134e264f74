"""Reliability diagram of one classifier: accuracy vs confidence per bin, with the ECE."""
from typing import Dict

import numpy as np
import torch

from mmkd.evaluation.functional import ece_bin_index, expected_calibration_error
from .plotting import DPI, RELIABILITY_SIZE, PathLike, plt, save_figure


def reliability_bins(probs, labels, num_bins: int = 10) -> Dict[str, np.ndarray]:
    """Per-bin sample count, accuracy and mean confidence with the bins of
    :func:`~mmkd.evaluation.functional.expected_calibration_error` (``((b-1)/B, b/B]``,
    float64 bounds and comparison as the reference, see ``ece_bin_index``); empty bins have
    accuracy and confidence NaN, so that ``100 * sum(count / n * |accuracy - confidence|)``
    over non-empty bins is the ECE."""
    probs, labels = torch.as_tensor(probs), torch.as_tensor(labels).long()
    conf, pred = probs.max(dim=1)
    bins = ece_bin_index(conf, num_bins)
    count = torch.bincount(bins, minlength=num_bins).double()
    hits = torch.bincount(bins, weights=(pred == labels).double(), minlength=num_bins)
    confs = torch.bincount(bins, weights=conf.double(), minlength=num_bins)
    with np.errstate(invalid='ignore', divide='ignore'):
        return dict(count=count.numpy(), accuracy=(hits / count).numpy(),
                    confidence=(confs / count).numpy())


def plot_reliability_diagram(probs, labels, out_path: PathLike, num_bins: int = 10,
                             title: str = 'reliability diagram') -> str:
    """Reliability diagram of one model (600 x 700 px).

    Top: the accuracy of each confidence bin ``((b-1)/B, b/B]`` as a bar, the gap to the
    bin's mean confidence in red, and the diagonal of perfect calibration; the title ends
    with the ECE (%) of :func:`~mmkd.evaluation.functional.expected_calibration_error`.
    Bottom: the fraction of samples per bin.

    Args:
        probs: Probabilities (n, C), tensor or array.
        labels: Ground-truth classes (n,).
        out_path: The PNG to write.
        num_bins (int): Number of equal-width bins B. Defaults to 10.
        title (str): Title before the ECE, e.g. the model name.

    Returns:
        str: ``out_path``.
    """
    probs, labels = torch.as_tensor(probs), torch.as_tensor(labels).long()
    ece = expected_calibration_error(probs, labels, num_bins)
    stats = reliability_bins(probs, labels, num_bins)
    width = 1.0 / num_bins
    centres = (np.arange(num_bins) + 0.5) * width
    filled = stats['count'] > 0
    acc = np.where(filled, stats['accuracy'], 0.0)
    conf = np.where(filled, stats['confidence'], 0.0)

    fig, (ax, hist) = plt.subplots(2, 1, figsize=RELIABILITY_SIZE, dpi=DPI,
                                   height_ratios=(3, 1), sharex=True, layout='constrained')
    ax.bar(centres, acc, width=width, color='tab:blue', edgecolor='black', label='accuracy')
    ax.bar(centres[filled], (conf - acc)[filled], bottom=acc[filled], width=width,
           color='tab:red', alpha=0.3, edgecolor='tab:red', hatch='//', label='gap to confidence')
    ax.plot([0, 1], [0, 1], ls='--', color='gray', label='perfect calibration')
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel='accuracy')
    ax.set_title(f'{title}: ECE {ece:.2f} %')
    ax.legend(loc='upper left', fontsize=8)
    ax.grid(alpha=0.3)
    hist.bar(centres, stats['count'] / stats['count'].sum(), width=width, color='gray',
             edgecolor='black')
    hist.set(xlim=(0, 1), xlabel='confidence', ylabel='fraction of samples')
    hist.grid(alpha=0.3)
    return save_figure(fig, out_path)
