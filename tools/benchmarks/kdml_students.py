"""KD + ML with K = 1, 2, 4 students (paper B's classification setting): step time against
the sum of the same models' plain steps, and memory, on ``--device`` (CPU by default)."""
import copy
import statistics

from mmkd.testing import scratch_config
from .common import (KDML_CLS_CFG, build, cls_batch, device_of, measure, memory_label,
                     plain_steps, ratio_row, summed, train_step_fn, value_row)

NAME = 'kdml_students'
STUDENT_COUNTS = (1, 2, 4)


def _distiller_cfg(cfg, k):
    """The config's distiller with its students cycled to K of them (R50, R34, R50, R34);
    K = 1 has no peer, so mutual learning is off (ml_weight 0)."""
    model = copy.deepcopy(cfg.model)
    model.students = [copy.deepcopy(cfg.model.students[i % len(cfg.model.students)])
                      for i in range(k)]
    if k == 1:
        model.ml_weight = 0
    return model


def run(args):
    device = device_of(args)
    cfg = scratch_config(KDML_CLS_CFG)
    size, batch_size = args.kdml_img_size, 16
    data = cls_batch(batch_size, size, num_classes=2)
    # On the CPU the K = 4 step alone takes tens of seconds: 3 repetitions at most.
    reps = args.reps if device.type == 'cuda' else min(args.reps, 3)
    rows = []
    for k in STUDENT_COUNTS:
        model = build(_distiller_cfg(cfg, k), device)
        contenders = {'kdml': train_step_fn(model, data), **plain_steps(model, data)}
        times, peaks = measure(contenders, device, reps)
        plain = summed(times, model.model_names)
        what = f'{device.type}, batch {batch_size}, {size}px, R152 -> {k} students, {reps} reps'
        peak_plain = max(peaks[n] for n in model.model_names)
        rows += [
            ratio_row(f'KD+ML step, K={k} / sum of {k + 1} plain steps', times['kdml'], plain,
                      detail=what),
            value_row(f'  KD+ML step time, K={k}', 1000 * statistics.median(times['kdml']), 'ms',
                      what, [1000 * min(times['kdml']), 1000 * max(times['kdml'])]),
            value_row(f'  KD+ML {memory_label(device)}, K={k}', peaks['kdml'] / 2**20, 'MiB',
                      f'largest plain model alone: {peak_plain / 2**20:.0f} MiB'),
        ]
        del model, contenders
    return rows
