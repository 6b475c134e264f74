"""What every figure of :mod:`mmkd.visualization.figures` shares: the Agg backend, the fixed
sizes and dpi, the model colours and saving a PNG."""
import os
import os.path as osp
from typing import Dict, Sequence, Union

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 100
# figure sizes in inches; pixel sizes are these times DPI
TRAINING_CURVES_SIZE = (16, 12)
RELIABILITY_SIZE = (6, 7)
ACCURACY_BARS_SIZE = (8, 5)
DETECTION_GRID_SIZE = (12, 8)
# (width, height) in pixels of every figure
FIGURE_PIXELS = {
    name: (round(w * DPI), round(h * DPI))
    for name, (w, h) in dict(training_curves=TRAINING_CURVES_SIZE,
                             reliability_diagram=RELIABILITY_SIZE,
                             accuracy_bars=ACCURACY_BARS_SIZE,
                             detection_grid=DETECTION_GRID_SIZE).items()
}
ENSEMBLE = 'ensemble'

PathLike = Union[str, os.PathLike]


def model_colours(models: Sequence[str]) -> Dict[str, object]:
    """A colour of matplotlib's cycle per model, in order; the ensemble is black."""
    cycle = plt.rcParams['axes.prop_cycle'].by_key()['color']
    others = [m for m in models if m != ENSEMBLE]
    colours = {m: cycle[i % len(cycle)] for i, m in enumerate(others)}
    colours[ENSEMBLE] = 'black'
    return colours


def integer_ticks(ax, xs) -> None:
    """Ticks at the logged iterations / epochs when few, else integer ticks."""
    xs = sorted(set(xs))
    if 0 < len(xs) <= 12:
        ax.set_xticks(xs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig, out_path: PathLike) -> str:
    """Save ``fig`` as the PNG ``out_path`` at :data:`DPI` (making its folder), close it and
    return the path as a str."""
    out_path = str(out_path)
    if osp.dirname(out_path):
        os.makedirs(osp.dirname(out_path), exist_ok=True)
    fig.savefig(out_path, dpi=DPI, format='png')
    plt.close(fig)
    return out_path
