"""PNG figures of a run: training curves, reliability diagrams, accuracy bars, detections.

Every function draws with matplotlib's Agg backend (no display needed), saves one PNG and
returns its path. Figures have a fixed size and dpi (never ``bbox_inches='tight'``), so the
pixel size of each PNG does not depend on the data (width x height):

=========================  ==============  ==================================================
function                   PNG size (px)   content
=========================  ==============  ==================================================
plot_training_curves       1600 x 1200     a subplot per model's losses vs iteration, then a
                                           subplot per val metric vs epoch, a line per model
plot_reliability_diagram   600 x 700       accuracy per confidence bin, diagonal, ECE (%)
plot_accuracy_bars         800 x 500       one bar per model (exits / teacher, students,
                                           ensemble) of one metric
plot_detection_grid        1200 x 800      up to 6 pictures in a 3 x 2 grid
=========================  ==============  ==================================================

``FIGURE_PIXELS`` holds these sizes. The reading helpers (:func:`read_scalars`,
:func:`find_scalars_files`, :func:`last_metrics`) understand the files mmengine's
``LoggerHook`` writes under a work dir: ``<work_dir>/<timestamp>/vis_data/scalars.json``
(one JSON object per logged training step, with ``loss`` keys, ``lr``, ``epoch`` (by-epoch
loops only), ``iter`` and ``step``, and one per validation with the ``'{model}/{metric}'``
keys and ``step`` = the epoch, or the iteration for iteration-based loops) and
``<work_dir>/<timestamp>/<timestamp>.json`` (the metrics of a test run).
"""
import glob
import json
import math
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmkd.evaluation.functional import ece_bin_index, expected_calibration_error  # noqa: E402

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
_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')

PathLike = Union[str, os.PathLike]


# ---------------------------------------------------------------- reading a work dir
def find_scalars_files(work_dir: PathLike) -> List[str]:
    """Every ``<timestamp>/vis_data/scalars.json`` of ``work_dir``, oldest run first.

    ``work_dir`` may also be one run's own ``<timestamp>`` folder.
    """
    own = osp.join(work_dir, 'vis_data', 'scalars.json')
    if osp.isfile(own):
        return [own]
    return [
        path for path in sorted(glob.glob(osp.join(glob.escape(str(work_dir)), '*', 'vis_data',
                                                   'scalars.json')))
        if _TIMESTAMP.match(osp.basename(osp.dirname(osp.dirname(path))))
    ]


def read_scalars(scalars_json_paths: Sequence[PathLike]) -> Tuple[List[dict], List[dict]]:
    """Read ``scalars.json`` files of successive runs of one work dir (oldest first) into
    ``(train_rows, val_rows)``, in time order.

    Train rows have an ``iter``; validation rows have ``'{model}/{metric}'`` keys. A later run
    replaces what an earlier one logged from its own first iteration on: a run resumed from a
    checkpoint continues the earlier curves (and drops what the earlier run logged after that
    checkpoint), a run started from scratch replaces them.
    """
    runs: List[List[dict]] = []
    for path in scalars_json_paths:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        # Runs of one process share mmdet's visualizer (named 'visualizer'), so one file can
        # hold several runs: a new one starts where the iteration does not increase.
        last = None
        runs.append([])
        for row in rows:
            if 'iter' in row and last is not None and row['iter'] <= last and runs[-1]:
                runs.append([])
            last = row.get('iter', last)
            runs[-1].append(row)
    kept: List[dict] = []
    for i, rows in enumerate(runs):
        later_starts = [_first_iter(r) for r in runs[i + 1:]]
        later_starts = [s for s in later_starts if s is not None]
        if later_starts:
            cut = min(later_starts)
            stop = next((j for j, r in enumerate(rows) if 'iter' in r and r['iter'] >= cut),
                        len(rows))
            rows = rows[:stop]
        kept.extend(rows)
    train = [r for r in kept if 'iter' in r and not _metric_keys(r)]
    val = [r for r in kept if _metric_keys(r)]
    return train, val


def last_metrics(work_dir: PathLike) -> Dict[str, float]:
    """The ``'{model}/{metric}'`` values of the newest evaluation of ``work_dir``: the test
    metrics ``<timestamp>/<timestamp>.json`` of ``tools/test.py`` or the last validation
    row of a ``scalars.json``, whichever run is newer (a test after training in one run
    counts as newer). Empty when there is none."""
    run_dirs = [work_dir] if osp.isdir(osp.join(work_dir, 'vis_data')) else sorted(
        d for d in glob.glob(osp.join(glob.escape(str(work_dir)), '*'))
        if osp.isdir(d) and _TIMESTAMP.match(osp.basename(d)))
    for run_dir in reversed(run_dirs):
        stamp = osp.basename(osp.normpath(run_dir))
        test_json = osp.join(run_dir, f'{stamp}.json')
        if osp.isfile(test_json):
            with open(test_json) as f:
                text = f.read().strip()
            if text:
                metrics = _metric_keys(json.loads(text))
                if metrics:
                    return metrics
        scalars = osp.join(run_dir, 'vis_data', 'scalars.json')
        if osp.isfile(scalars):
            _, val = read_scalars([scalars])
            if val:
                return _metric_keys(val[-1])
    return {}


def _first_iter(rows: List[dict]) -> Optional[int]:
    return next((r['iter'] for r in rows if 'iter' in r), None)


def _metric_keys(row: dict) -> Dict[str, float]:
    return {k: v for k, v in row.items() if '/' in k and isinstance(v, (int, float))}


def _is_loss(key: str) -> bool:
    return key.rpartition('.')[2].startswith('loss')


def _models_in_order(keys) -> List[str]:
    models: List[str] = []
    for key in keys:
        model = key.rpartition('/')[0]
        if model not in models:
            models.append(model)
    return models


def _colours(models: Sequence[str]) -> Dict[str, object]:
    cycle = plt.rcParams['axes.prop_cycle'].by_key()['color']
    others = [m for m in models if m != ENSEMBLE]
    colours = {m: cycle[i % len(cycle)] for i, m in enumerate(others)}
    colours[ENSEMBLE] = 'black'
    return colours


def _integer_ticks(ax, xs) -> None:
    """Ticks at the logged iterations / epochs when few, else integer ticks."""
    xs = sorted(set(xs))
    if 0 < len(xs) <= 12:
        ax.set_xticks(xs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, out_path: PathLike) -> str:
    out_path = str(out_path)
    if osp.dirname(out_path):
        os.makedirs(osp.dirname(out_path), exist_ok=True)
    fig.savefig(out_path, dpi=DPI, format='png')
    plt.close(fig)
    return out_path


# ---------------------------------------------------------------- figures
def plot_training_curves(scalars_json_paths: Union[PathLike, Sequence[PathLike]],
                         out_path: PathLike) -> str:
    """Training losses vs iteration and validation metrics vs epoch (1600 x 1200 px).

    One subplot per model prefix of the loss keys (``teacher``, ``student0``, ``exit1``, ...;
    the total ``loss`` and unprefixed ``loss_*`` keys under ``total``) with a line per loss
    key, then one subplot per validation metric (``top1_acc``, ``nll``, ``mIoU``, ...) with a
    line per model, the ensemble in black dashes. Iteration-based loops put the iteration on
    the metrics' x axis.

    Args:
        scalars_json_paths: One ``scalars.json`` or several of successive runs, oldest
            first; merged by :func:`read_scalars`.
        out_path: The PNG to write.

    Returns:
        str: ``out_path``.
    """
    if isinstance(scalars_json_paths, (str, os.PathLike)):
        scalars_json_paths = [scalars_json_paths]
    train, val = read_scalars(scalars_json_paths)
    groups: Dict[str, List[str]] = {}
    for row in train:
        for key in row:
            if _is_loss(key):
                group = key.split('.', 1)[0] if '.' in key else 'total'
                if key not in groups.setdefault(group, []):
                    groups[group].append(key)
    if 'total' in groups:  # the total loss first
        groups = {'total': groups.pop('total'), **groups}
    metric_names: List[str] = []
    metric_keys = [k for row in val for k in _metric_keys(row)]
    for key in metric_keys:
        name = key.rpartition('/')[2]
        if name not in metric_names:
            metric_names.append(name)
    if not groups and not metric_names:
        raise ValueError(f'no loss or validation metric in {list(map(str, scalars_json_paths))}')
    models = _models_in_order(metric_keys)
    colours = _colours(models)
    epoch_axis = any('epoch' in r for r in train) or not train
    val_x = [r.get('step', i + 1) for i, r in enumerate(val)]

    n = len(groups) + len(metric_names)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=TRAINING_CURVES_SIZE, dpi=DPI,
                             squeeze=False, layout='constrained')
    axes = list(axes.flat)
    for ax, (group, keys) in zip(axes, groups.items()):
        values = []
        for key in keys:
            pts = [(r['iter'], r[key]) for r in train if key in r]
            ax.plot(*zip(*pts), label=key.split('.', 1)[1] if '.' in key else key, lw=1,
                    marker='.' if len(pts) < 20 else None)
            values += [v for _, v in pts]
        positive = [v for v in values if v > 0]
        if positive and len(positive) == len(values) and max(values) / min(positive) > 100:
            ax.set_yscale('log')
        ax.set_title(f'{group} losses')
        ax.set_xlabel('iteration')
        _integer_ticks(ax, [r['iter'] for r in train])
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax, name in zip(axes[len(groups):], metric_names):
        for model in models:
            key = f'{model}/{name}'
            pts = [(x, r[key]) for x, r in zip(val_x, val) if key in r]
            if pts:
                ens = model == ENSEMBLE
                ax.plot(*zip(*pts), label=model, color=colours[model], marker='o', ms=3,
                        ls='--' if ens else '-', lw=2 if ens else 1)
        ax.set_title(name)
        ax.set_xlabel('epoch' if epoch_axis else 'iteration')
        _integer_ticks(ax, val_x)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_axis_off()
    return _save(fig, out_path)


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
    return _save(fig, out_path)


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
    colours = _colours(list(picked))
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
    return _save(fig, out_path)


def plot_detection_grid(image_paths: Sequence[PathLike], out_path: PathLike,
                        max_images: int = 6) -> str:
    """Up to ``max_images`` (at most 6) pictures in a 3 x 2 grid, row by row, each titled
    with its file name (1200 x 800 px), e.g. the ``--show-dir`` pictures of ``tools/test.py``
    (ground truth, each model's top box, the ensemble's box).

    Args:
        image_paths: Image files, in the order to show.
        out_path: The PNG to write.
        max_images (int): How many to show, at most 6. Defaults to 6.

    Returns:
        str: ``out_path``.
    """
    import cv2
    paths = list(image_paths)[:min(max_images, 6)]
    if not paths:
        raise ValueError('no image to put in the detection grid')
    fig, axes = plt.subplots(2, 3, figsize=DETECTION_GRID_SIZE, dpi=DPI, layout='constrained')
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, path in zip(axes.flat, paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f'cannot read the image {path}')
        ax.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        ax.set_title(osp.basename(str(path)), fontsize=9)
    return _save(fig, out_path)
