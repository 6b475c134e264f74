"""Reading the files mmengine's ``LoggerHook`` writes under a work dir.

``<work_dir>/<timestamp>/vis_data/scalars.json`` holds one JSON object per logged training
step, with ``loss`` keys, ``lr``, ``epoch`` (by-epoch loops only), ``iter`` and ``step``, and
one per validation with the ``'{model}/{metric}'`` keys and ``step`` = the epoch, or the
iteration for iteration-based loops; ``<work_dir>/<timestamp>/<timestamp>.json`` holds the
metrics of a test run.
"""
import glob
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

from .plotting import PathLike

_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')


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
    train = [r for r in kept if 'iter' in r and not logged_metrics(r)]
    val = [r for r in kept if logged_metrics(r)]
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
                metrics = logged_metrics(json.loads(text))
                if metrics:
                    return metrics
        scalars = osp.join(run_dir, 'vis_data', 'scalars.json')
        if osp.isfile(scalars):
            _, val = read_scalars([scalars])
            if val:
                return logged_metrics(val[-1])
    return {}


def logged_metrics(row: dict) -> Dict[str, float]:
    """The numeric ``'{model}/{metric}'`` entries of a logged row."""
    return {k: v for k, v in row.items() if '/' in k and isinstance(v, (int, float))}


def _first_iter(rows: List[dict]) -> Optional[int]:
    return next((r['iter'] for r in rows if 'iter' in r), None)
