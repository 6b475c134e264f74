"""Seeded comparisons of training recipes: runs ``tools/train.py`` once per (variant, seed),
resumable per finished run, and prints the papers' table forms (mean ± std over seeds).

Each run is a subprocess (a fresh mmengine Runner, nothing shared between runs). Its final
validation metrics are read from the run's ``scalars.json`` and kept in
``<out_dir>/runs/<name>/result.json``; a run with that file is not trained again."""
import argparse
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@dataclass
class Run:
    """One training run.

    Args:
        name (str): Unique name; also the folder under ``<out_dir>/runs``.
        config (str): Config file.
        options (list[str]): ``--cfg-options`` items (``key=value``).
        seed (int): ``randomness.seed``.
        extra_args (list[str]): More ``tools/train.py`` arguments (e.g. ``--data-root``).
        group (str): The table column the run belongs to (the variant).
        after (str, optional): Name of a run that must finish first (an offline teacher);
            ``{after}`` in ``options`` becomes that run's final checkpoint.
    """
    name: str
    config: str
    options: List[str] = field(default_factory=list)
    seed: int = 0
    extra_args: List[str] = field(default_factory=list)
    group: str = ''
    after: Optional[str] = None


def run_dir(out_dir: str, name: str) -> str:
    return osp.join(out_dir, 'runs', name)


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint a finished run left (``last_checkpoint`` names it)."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def final_metrics(work_dir: str) -> Dict[str, float]:
    """The last validation metrics that the run's ``LocalVisBackend`` wrote.

    Validation lines of ``<work_dir>/<timestamp>/vis_data/scalars.json`` are those without a
    learning rate; the last one of the newest timestamp is the final evaluation."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'{work_dir}: no */vis_data/scalars.json; was the run '
                                'validated (val_cfg, val_interval)?')
    metrics = None
    with open(files[-1]) as f:
        for line in f:
            row = json.loads(line)
            if 'lr' not in row and any('/' in k for k in row):
                metrics = row
    if metrics is None:
        raise ValueError(f'{files[-1]}: no validation metrics logged')
    return {k: float(v) for k, v in metrics.items() if k != 'step'}


# Metrics in % (checked to lie in [0, 100]); any other metric is only checked to be finite.
PERCENT_METRICS = frozenset({'top1_acc', 'top5_acc', 'top1_err', 'top5_err', 'ece', 'mIoU',
                             'acc50', 'AP', 'AP50', 'AP75'})


def _flat(node, key: str, out: Dict[str, str]) -> Dict[str, str]:
    if isinstance(node, dict):
        for k, v in node.items():
            _flat(v, f'{key}.{k}' if key else str(k), out)
    elif isinstance(node, (list, tuple)) and any(isinstance(v, dict) for v in node):
        for i, v in enumerate(node):
            _flat(v, f'{key}.{i}', out)
    else:
        out[key] = repr(node)
    return out


def dump_config(cfg, path: str) -> str:
    """Write ``cfg`` (an mmengine ``Config``) to ``path`` atomically: a second comparison
    writing the same file at the same time (two seed sets into one ``--out-dir``) never lets
    a run read it half-written. Returns ``path``."""
    tmp = f'{path}.{os.getpid()}.tmp.py'
    cfg.dump(tmp)
    os.replace(tmp, path)
    return path


def resolved_run(run: Run) -> Dict[str, object]:
    """What a run's result depends on: every key of its config file as resolved (``_base_``
    included, so the budget of a schedule base counts too), its ``--cfg-options``, seed and
    other arguments. A cached run is reused only when this is equal."""
    config: Dict[str, str] = {'<file>': run.config}
    if osp.isfile(run.config):
        from mmengine.config import Config
        config = _flat(Config.fromfile(run.config).to_dict(), '', {})
        config.pop('filename', None)
        if not config:
            raise ValueError(f'{run.config} is empty: write the config again (rerun the '
                             f'comparison command) before training {run.name}')
    return dict(config=config, options=list(run.options), seed=run.seed,
                extra_args=list(run.extra_args))


def _differences(old: Dict[str, object], new: Dict[str, object]) -> List[str]:
    diffs = []
    for part in ('options', 'seed', 'extra_args'):
        if old.get(part) != new.get(part):
            diffs.append(f'{part}: {old.get(part)} -> {new.get(part)}')
    before, after = old.get('config', {}), new.get('config', {})
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            diffs.append(f'{key}: {before.get(key, "(none)")} -> {after.get(key, "(none)")}')
    return diffs


def check_same_run(path: str, recorded: Optional[Dict[str, object]], run: Run,
                   resolved: Dict[str, object]) -> None:
    """Refuse to reuse (or resume) the run recorded in ``path`` under another config.

    Raises:
        RuntimeError: Naming the run, the file and the first differences.
    """
    if recorded is None or recorded == resolved:
        return
    diffs = _differences(recorded, resolved)
    shown = '; '.join(diffs[:5]) + (f'; and {len(diffs) - 5} more' if len(diffs) > 5 else '')
    raise RuntimeError(
        f'run {run.name} in {osp.dirname(path)} was made with another config ({path}: '
        f'{shown}): its results would be mixed with this call\'s in one table. Use another '
        f'--out-dir, or delete {osp.dirname(path)} to train it again with this config.')


def read_result(path: str) -> Dict[str, object]:
    """A run's ``result.json``, checked: JSON, a record with ``metrics``, every metric a
    finite number and every % metric in [0, 100].

    Raises:
        ValueError: Naming the file, the key and the value.
    """
    try:
        with open(path) as f:
            record = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'{path} is not JSON ({e}): delete its run folder to train that run '
                         'again') from e
    if not isinstance(record, dict) or not isinstance(record.get('metrics'), dict):
        raise ValueError(f'{path} holds no "metrics" record: delete its run folder to train '
                         'that run again')
    for key, value in record['metrics'].items():
        # nll has no floor (-ln 0 = inf): the one metric a run may legitimately record as inf
        unbounded = key.split('/')[-1] == 'nll' and value == math.inf
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not (math.isfinite(value) or unbounded):
            raise ValueError(f'{path}: metrics[{key!r}] = {value!r} is not a finite number: '
                             'the file was edited or damaged; delete its run folder to train '
                             'that run again')
        if key.split('/')[-1] in PERCENT_METRICS and not 0 <= value <= 100:
            raise ValueError(f'{path}: metrics[{key!r}] = {value!r} is a percentage outside '
                             '[0, 100]: the file was edited or damaged; delete its run folder '
                             'to train that run again')
    return record


def execute(run: Run, out_dir: str, python: str = sys.executable,
            env: Optional[Dict[str, str]] = None) -> Dict[str, object]:
    """Train ``run`` (unless its result exists, made with the same resolved config:
    :func:`resolved_run`) and return its result record. ``env``: the training process's
    environment (default: this one's)."""
    folder = run_dir(out_dir, run.name)
    result_path = osp.join(folder, 'result.json')
    run_path = osp.join(folder, 'run.json')
    resolved = resolved_run(run)
    if osp.exists(result_path):
        record = read_result(result_path)
        if 'resolved' not in record:
            print(f'{result_path} was written without its config (an older mmkd): reused '
                  'unchecked', flush=True)
        check_same_run(result_path, record.get('resolved'), run, resolved)
        return record
    if osp.exists(run_path):  # started, not finished: resume only the same config
        with open(run_path) as f:
            check_same_run(run_path, json.load(f), run, resolved)
    os.makedirs(folder, exist_ok=True)
    with open(run_path, 'w') as f:
        json.dump(resolved, f, indent=1)
    work_dir = osp.join(folder, 'work')
    # absolute: the run starts in REPO_ROOT, whatever folder this process runs in
    cmd = [python, osp.join(REPO_ROOT, 'tools/train.py'), osp.abspath(run.config),
           '--work-dir', osp.abspath(work_dir), *run.extra_args]
    if osp.isdir(work_dir) and glob.glob(osp.join(work_dir, '*.pth')):
        cmd.append('--resume')  # a run killed half-way goes on from its last epoch
    options = list(run.options)
    if run.after is not None:
        with open(osp.join(run_dir(out_dir, run.after), 'result.json')) as f:
            after_ckpt = json.load(f)['checkpoint']
        options = [o.replace('{after}', after_ckpt) for o in options]
    cmd += ['--cfg-options', f'randomness.seed={run.seed}', *options]
    start = time.time()
    with open(osp.join(folder, 'train.log'), 'a') as logfile:
        proc = subprocess.run(cmd, stdout=logfile, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                              env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'run {run.name} failed (exit {proc.returncode}); see '
                           f'{osp.join(folder, "train.log")}\ncommand: {" ".join(cmd)}')
    record = dict(name=run.name, group=run.group, seed=run.seed, config=run.config,
                  options=run.options, seconds=round(time.time() - start, 1),
                  checkpoint=last_checkpoint(work_dir), metrics=final_metrics(work_dir),
                  resolved=resolved)
    with open(result_path + '.tmp', 'w') as f:
        json.dump(record, f, indent=1)
    os.replace(result_path + '.tmp', result_path)
    return record


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be an integer >= 1, got {text!r}')
    return value


def add_jobs_argument(parser) -> None:
    """The ``--jobs`` option of the comparison tools (:func:`execute_all`'s ``jobs``),
    checked when the command line is parsed."""
    parser.add_argument('--jobs', type=_jobs, default=1,
                        help='runs trained at once (default 1); each run waits for the '
                        'teacher it loads. Without OMP_NUM_THREADS set, each run gets '
                        'cpu_count // jobs threads; on one GPU the runs share it')


def execute_all(runs: Sequence[Run], out_dir: str, log=print,
                jobs: int = 1) -> List[Dict[str, object]]:
    """Run every run, printing progress with an ETA from the runs timed so far; all their
    records are written to ``<out_dir>/results.json`` at the end, in ``runs``' order.

    ``jobs`` runs train at once (subprocesses, each started when the run named by its
    ``after`` has finished). Without ``OMP_NUM_THREADS`` in the environment each gets
    ``OMP_NUM_THREADS = MKL_NUM_THREADS = max(1, cpu_count // jobs)``: several runs with
    every core each would spin against each other. A failed run stops new runs from
    starting; the runs under way finish (their results are kept), then its error is raised.

    Raises:
        ValueError: ``jobs`` below 1.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f'--jobs must be an integer >= 1, got {jobs!r}')
    env = None
    if jobs > 1 and 'OMP_NUM_THREADS' not in os.environ:
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        log(f'{jobs} runs at once, {threads} thread(s) each (OMP_NUM_THREADS)', flush=True)
    names = {run.name for run in runs}
    results: List[Optional[Dict[str, object]]] = [None] * len(runs)
    timed, finished, failure = [], set(), None
    waiting = list(range(len(runs)))
    running: Dict[futures.Future, tuple] = {}

    def ready(i):
        after = runs[i].after
        return after is None or after not in names or after in finished

    with futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        while waiting or running:
            while failure is None and len(running) < jobs:
                i = next((i for i in waiting if ready(i)), None)
                if i is None:
                    break
                waiting.remove(i)
                cached = osp.exists(osp.join(run_dir(out_dir, runs[i].name), 'result.json'))
                future = pool.submit(execute, runs[i], out_dir, env=env)
                running[future] = (i, cached)
            if not running:
                break  # after a failure: nothing more starts
            done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            for future in done:
                i, cached = running.pop(future)
                try:
                    record = future.result()
                except Exception as e:  # noqa: BLE001 -- re-raised once the others end
                    failure = failure or e
                    continue
                results[i] = record
                finished.add(runs[i].name)
                if not cached:
                    timed.append(record['seconds'])
                left = len(waiting) + len(running)
                eta = (f', ETA {np.mean(timed) * math.ceil(left / jobs) / 60:.1f} min'
                       if timed and left else '')
                log(f'[{len(finished)}/{len(runs)}] {runs[i].name}: '
                    f'{"cached" if cached else "trained"} in {record["seconds"]:.0f} s{eta}',
                    flush=True)
    if failure is not None:
        raise failure
    with open(osp.join(out_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    return results


def write_report(text: str, results: Sequence[Dict[str, object]], start: float,
                 out_dir: str) -> str:
    """``text`` with the runs' training time appended (all of it, and this call's since
    ``start``), printed and written to ``<out_dir>/report.md``; returns the full text."""
    wall = sum(r['seconds'] for r in results)
    text += (f'\n\n{len(results)} runs, {wall / 60:.1f} min of training in all '
             f'({(time.time() - start) / 60:.1f} min in this call).')
    print(text)
    with open(osp.join(out_dir, 'report.md'), 'w') as f:
        f.write(text + '\n')
    return text


def mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    """``'mean ± std'`` (sample std, ddof=1; ``± 0`` for one value)."""
    v = np.asarray(values, dtype=float) * scale
    std = v.std(ddof=1) if len(v) > 1 else 0.0
    return f'{v.mean():.{digits}f} ± {std:.{digits}f}'


def p_cell(a: Sequence[float], b: Sequence[float]) -> str:
    """Welch's p of ``a`` against ``b`` for a table: 3 decimals, ``< 0.001`` below that,
    ``n/a`` where a side has fewer than two values."""
    if len(a) < 2 or len(b) < 2:
        return 'n/a'
    p = welch_p(a, b)
    return '< 0.001' if p < 0.0005 else f'{p:.3f}'


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch's t-test p-value of mean(a) ≠ mean(b) (unequal variances)."""
    from scipy.stats import ttest_ind
    p = ttest_ind(np.asarray(a, float), np.asarray(b, float), equal_var=False).pvalue
    return float('nan') if p is None or math.isnan(p) else float(p)


def collect(results: Sequence[Dict[str, object]], group: str, key: str) -> List[float]:
    """``metrics[key]`` of every run in ``group`` (one value per seed)."""
    return [r['metrics'][key] for r in results if r['group'] == group and key in r['metrics']]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def model_table(results: Sequence[Dict[str, object]], groups: Sequence[str],
                labels: Sequence[str], models: Sequence[str], metric: str,
                scale: float = 1.0) -> str:
    """Paper B's Table 2 form: one row per model (teacher, student k, ensemble), one column
    per variant, ``mean ± std`` of ``<model>/<metric>`` over seeds, '—' where a variant has
    no such model (no teacher in mutual learning alone)."""
    rows = []
    for model in models:
        cells = [model]
        for group in groups:
            values = collect(results, group, f'{model}/{metric}')
            cells.append(mean_std(values, scale) if values else '—')
        rows.append(cells)
    return markdown_table(['model', *labels], rows)
