from typing import Dict


def format_metric_table(metrics: Dict[str, float], transpose_metric: str = None) -> str:
    """Side-by-side table of ``'{model}/{metric}'`` keys: one row per model, one column per
    metric, in the order the keys first appear (e.g. exits then ensemble, or teacher,
    students, ensemble). With ``transpose_metric``, one row of that metric with a column per
    model (paper A Table 2 form: accuracy of every exit and of the ensemble)."""
    if transpose_metric is not None:
        picked = {k.rpartition('/')[0]: v for k, v in metrics.items()
                  if k.rpartition('/')[2] == transpose_metric}
        return format_metric_table({f'{transpose_metric}/{m}': v for m, v in picked.items()})
    rows: Dict[str, Dict[str, float]] = {}
    columns = []
    for key, value in metrics.items():
        model, _, name = key.rpartition('/')
        rows.setdefault(model or '-', {})[name] = value
        if name not in columns:
            columns.append(name)
    width = max([5] + [len(m) for m in rows])
    lines = [' | '.join([f'{"model":<{width}}'] + [f'{c:>9}' for c in columns])]
    lines.append('-+-'.join(['-' * width] + ['-' * 9] * len(columns)))
    for model, values in rows.items():
        cells = [f'{values[c]:>9.3f}' if c in values else f'{"":>9}' for c in columns]
        lines.append(' | '.join([f'{model:<{width}}'] + cells))
    return '\n'.join(lines)
