"""Per-epoch validation curves of several seeded runs per variant, mean ± std (one PNG).

The inputs are work dirs of ``tools/train.py`` runs; their validation rows are read with
:func:`mmkd.visualization.figures.read_scalars` (``step`` = the epoch of a by-epoch loop).
"""
from typing import Dict, Sequence, Tuple

import numpy as np

from .figures.plotting import DPI, PathLike, plt, save_figure
from .figures.scalars import find_scalars_files, read_scalars

SEED_CURVES_SIZE = (8, 5)  # inches: 800 x 500 px at DPI


def epoch_curve(work_dir: PathLike, key: str) -> Dict[int, float]:
    """``{epoch: value}`` of ``key`` (e.g. ``'exit4/top1_err'``) over the validations of
    ``work_dir`` (a resumed run continues its earlier curve)."""
    _, val = read_scalars(find_scalars_files(work_dir))
    return {int(row['step']): float(row[key]) for row in val if key in row}


def seed_curve(work_dirs: Sequence[PathLike],
               key: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(epochs, mean, std)`` of ``key`` over the runs ``work_dirs`` at the epochs every run
    validated (std with ddof=1; 0 for one run)."""
    curves = [epoch_curve(d, key) for d in work_dirs]
    epochs = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    values = np.array([[c[e] for e in epochs] for c in curves], dtype=float)
    std = values.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(len(epochs))
    return np.array(epochs), values.mean(axis=0) if curves else np.array([]), std


def plot_seed_curves(runs: Dict[str, Sequence[PathLike]], out_path: PathLike,
                     key: str = 'exit4/top1_err', ylabel: str = 'test top-1 error (%)') -> str:
    """One line per variant (label -> its runs' work dirs): the mean of ``key`` per epoch with
    a ± std band over the runs, the number of runs in the legend (800 x 500 px). Variants
    without a run are left out; it is an error when none has one."""
    runs = {label: dirs for label, dirs in runs.items() if dirs}
    if not runs:
        raise ValueError('plot_seed_curves: no variant has a finished run')
    fig, ax = plt.subplots(figsize=SEED_CURVES_SIZE, dpi=DPI)
    for label, dirs in runs.items():
        epochs, mean, std = seed_curve(dirs, key)
        line, = ax.plot(epochs, mean, marker='.', label=f'{label} (n={len(dirs)})')
        ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel('epoch')
    ax.set_ylabel(ylabel)
    ax.set_title(f'{key}, mean ± std over seeds')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_path)

