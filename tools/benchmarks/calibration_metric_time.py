"""MultiModelClsMetric (top-k, NLL, ECE, AURC, E-AURC) on 10,000 samples x 100 classes."""
import statistics

import torch

from mmkd.registry import METRICS
from .common import side_by_side, value_row

NAME = 'calibration_metric_time'


def run(args):
    g = torch.Generator().manual_seed(0)
    n, names = 10000, ('exit1', 'exit2', 'exit3', 'exit4', 'ensemble')
    probs = {m: torch.randn(n, 100, generator=g).softmax(1) for m in names}
    labels = torch.randint(0, 100, (n, ), generator=g)

    def evaluate():
        metric = METRICS.build(dict(type='MultiModelClsMetric'))
        for start in range(0, n, 500):
            sl = slice(start, start + 500)
            metric.process({}, [dict(sample_idx=torch.arange(n)[sl], gt_label=labels[sl],
                                     probs={m: p[sl] for m, p in probs.items()})])
        metric.evaluate(n)

    times = side_by_side({'metric': evaluate}, args.reps)['metric']
    return [value_row('calibration metrics, 10,000 samples x 5 models',
                      statistics.median(times), 's',
                      'top-1/5, NLL, ECE, AURC, E-AURC per model', [min(times), max(times)])]
