"""Training losses vs iteration and validation metrics vs epoch of a work dir."""
import math
import os
from typing import Dict, List, Sequence, Union

from .plotting import (DPI, ENSEMBLE, TRAINING_CURVES_SIZE, PathLike, integer_ticks,
                       model_colours, plt, save_figure)
from .scalars import logged_metrics, read_scalars


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
    metric_keys = [k for row in val for k in logged_metrics(row)]
    for key in metric_keys:
        name = key.rpartition('/')[2]
        if name not in metric_names:
            metric_names.append(name)
    if not groups and not metric_names:
        raise ValueError(f'no loss or validation metric in {list(map(str, scalars_json_paths))}')
    models = _models_in_order(metric_keys)
    colours = model_colours(models)
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
        integer_ticks(ax, [r['iter'] for r in train])
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
        integer_ticks(ax, val_x)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_axis_off()
    return save_figure(fig, out_path)


def _is_loss(key: str) -> bool:
    return key.rpartition('.')[2].startswith('loss')


def _models_in_order(keys) -> List[str]:
    models: List[str] = []
    for key in keys:
        model = key.rpartition('/')[0]
        if model not in models:
            models.append(model)
    return models
