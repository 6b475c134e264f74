"""One bar per model of one metric."""
from typing import Dict, Optional

from .plotting import ACCURACY_BARS_SIZE, DPI, PathLike, model_colours, plt, save_figure


def plot_accuracy_bars(metrics: Dict[str, float], out_path: PathLike,
                       metric: str = 'top1_acc', title: Optional[str] = None) -> str:
    """One bar per model of ``metric`` (800 x 500 px), models in the order of ``metrics``:
    each exit and the ensemble (paper A Table 2 form) or the teacher, the students and the
    ensemble (black). The value is written on each bar.

    Args:
        metrics (dict): ``'{model}/{metric}'`` values, e.g. what ``runner.test()`` returns.
        out_path: The PNG to write.
        metric (str): Metric name after the ``/``. Defaults to ``'top1_acc'``.
        title (str, optional): Defaults to ``'{metric} by model'``.

    Returns:
        str: ``out_path``.
    """
    picked = {k.rpartition('/')[0]: v for k, v in metrics.items()
              if k.rpartition('/')[2] == metric}
    if not picked:
        available = sorted({k.rpartition('/')[2] for k in metrics if '/' in k})
        raise ValueError(f'no "{{model}}/{metric}" key in the metrics; metrics there: '
                         f'{available}')
    colours = model_colours(list(picked))
    fig, ax = plt.subplots(figsize=ACCURACY_BARS_SIZE, dpi=DPI, layout='constrained')
    bars = ax.bar(list(picked), list(picked.values()), color=[colours[m] for m in picked],
                  edgecolor='black')
    ax.bar_label(bars, fmt='%.2f', fontsize=9)
    top = max(picked.values())
    if metric.endswith(('acc', 'mIoU', 'AP', 'AP50')) or metric.startswith('acc'):
        ax.set_ylim(0, max(100.0, top * 1.08))
    else:
        ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.set_ylabel(metric)
    ax.set_title(title or f'{metric} by model')
    ax.grid(axis='y', alpha=0.3)
    return save_figure(fig, out_path)
