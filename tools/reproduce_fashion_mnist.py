"""Real-data evidence for both method families on Fashion-MNIST, in the papers' table forms.

    python tools/reproduce_fashion_mnist.py --out-dir work_dirs/fashion [--parts selfdistill cls det]
        [--seeds 0 1 2] [--full] [--no-train]

Parts (each can run alone; defaults sized for 2 CPU cores, see the configs' headers):

* ``selfdistill`` — paper A, Tables 1 and 2 forms: baseline, +PS-KD, +BYOT, +DMFL and
  PS-KD+BYOT+DMFL, DMFL both with its gradient and as the reference ran it (no gradient), on
  ``configs/fashion_mnist/multi-exit_r18w8_1xb128-5e_fashion-mnist.py``; scored on the full
  10,000-image test split: top-1 / top-5 error, NLL, ECE, AURC, E-AURC, per-exit and
  exit-ensemble top-1.
* ``selfdistill-long`` — the same rows, DMFL with gradient only, at a schedule where PS-KD can
  act (``configs/fashion_mnist/multi-exit_r18w8_1xb128-30e_fashion-mnist.py``, 30 epochs),
  run in the order baseline and +PS-KD (seed by seed), +PS-KD+BYOT+DMFL, +BYOT, +DMFL
  (~19 min a run on the shared 2-core machine); the tables add Welch's
  p of each row against the baseline, and ``figures/test_error_curves.png`` and
  ``test_nll_curves.png`` show the per-epoch test error and NLL of every row (mean ± std over
  seeds).
* ``cls`` — paper B, Table 2 form: students alone, KD, ML, KD+ML online / offline, teacher /
  student k / max-ensemble accuracy, and Welch's t-test of each KD+ML ensemble against the KD
  ensemble (``configs/fashion_mnist/kdml_r18w16-to-r18w8x2_1xb64-4e_fashion-mnist.py``).
* ``det`` — the same five variants with ``DetKDMLDistiller`` on the Fashion-MNIST detection
  set in the Kvasir-SEG layout (written first by ``tools/data/make_fashion_det.py`` when
  missing): mIoU, Acc@0.5, AP50 and AP@[.5:.95] per model and for the ensemble.

Runs are resumable: a finished run is not trained again. The Debian package
``dataset-fashion-mnist`` is installed first when its files are missing (the only real image
set these machines can get). ``--full`` runs the paper-scale recipes (all 60,000 images, the
papers' epochs and widths), meant for a GPU machine. ``--no-train`` (self-distillation parts)
reports the finished runs only, e.g. while the others still train; ``--rows`` (self-distillation
parts) trains and reports only the named rows.
"""
import argparse
import copy
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

from mmengine.config import Config

from mmkd.datasets.fashion_mnist_dataset import DEFAULT_DATA_ROOT, find_idx_file
from mmkd.experiments.kdml_variants import (comparison_report, comparison_runs,
                                            write_variant_configs)
from mmkd.experiments.seeded_runs import (REPO_ROOT, Run, add_jobs_argument, dump_config,
                                          execute_all, markdown_table, mean_std, p_cell,
                                          run_dir)
from mmkd.utils import register_all_modules, set_data_root

SELF_DISTILL_CFG = 'configs/fashion_mnist/multi-exit_r18w8_1xb128-5e_fashion-mnist.py'
LONG_SELF_DISTILL_CFG = 'configs/fashion_mnist/multi-exit_r18w8_1xb128-30e_fashion-mnist.py'
CLS_CFG = 'configs/fashion_mnist/kdml_r18w16-to-r18w8x2_1xb64-4e_fashion-mnist.py'
DET_CFG = 'configs/fashion_mnist/det-kdml_gfl-r18w32-to-r18w8x2_1xb8-6e_fashion-det.py'

# Paper A's rows: (name, label, model overrides). DMFL "ref" is the reference objective (no
# gradient, SPEC §4.2), "grad" the term with the gradient the paper describes.
SELF_DISTILL_ROWS = (
    ('baseline', 'baseline', dict()),
    ('pskd', '+ PS-KD', dict(pskd=dict(alpha_t=0.8))),
    ('byot', '+ BYOT', dict(byot=dict())),
    ('dmfl-grad', '+ DMFL (with gradient)', dict(dmfl=dict(legacy_no_grad=False))),
    ('dmfl-ref', '+ DMFL (reference: no gradient)', dict(dmfl=dict(legacy_no_grad=True))),
    ('pskd-byot-dmfl-grad', '+ PS-KD + BYOT + DMFL (with gradient)',
     dict(pskd=dict(alpha_t=0.8), byot=dict(), dmfl=dict(legacy_no_grad=False))),
    ('pskd-byot-dmfl-ref', '+ PS-KD + BYOT + DMFL (reference: no gradient)',
     dict(pskd=dict(alpha_t=0.8), byot=dict(), dmfl=dict(legacy_no_grad=True))),
)
# The long schedule's rows in the order they run: PS-KD's comparison first, so that a run cut
# short still answers whether PS-KD helps (the reference DMFL rows are left out: they train
# nothing, SPEC §4.2).
LONG_SELF_DISTILL_ROWS = tuple(
    row for name in ('baseline', 'pskd', 'pskd-byot-dmfl-grad', 'byot', 'dmfl-grad')
    for row in SELF_DISTILL_ROWS if row[0] == name)
FULL_METHOD = 'pskd-byot-dmfl-grad'


def ensure_fashion_mnist(data_root: str) -> None:
    """Install Debian's dataset-fashion-mnist when its IDX files are missing (and say so)."""
    try:
        find_idx_file(data_root, 'train-images-idx3-ubyte')
        return
    except FileNotFoundError:
        if data_root.rstrip('/') != DEFAULT_DATA_ROOT.rstrip('/'):
            raise
    print(f'Fashion-MNIST not found in {data_root}: installing the Debian package '
          'dataset-fashion-mnist (apt-get update && apt-get install -y dataset-fashion-mnist)',
          flush=True)
    if shutil.which('apt-get') is None:
        raise SystemExit('apt-get is not available: install dataset-fashion-mnist by hand or '
                         'pass --data-root to a folder holding the four IDX files')
    subprocess.run(['apt-get', 'update', '-qq'], check=True)
    subprocess.run(['apt-get', 'install', '-y', '-qq', 'dataset-fashion-mnist'], check=True)


def base_config(path: str, data_root: str, full: bool, full_overrides: dict) -> Config:
    cfg = Config.fromfile(osp.join(REPO_ROOT, path))
    if data_root:
        set_data_root(cfg, data_root)
    if full:
        cfg.merge_from_dict(full_overrides)
    return cfg


def select_rows(rows, names, part: str):
    """``rows`` whose names are in ``names`` (all when ``names`` is empty), in ``rows``' order;
    a name that is not a row of ``part`` is an error naming ``--rows`` and the choices."""
    known = [name for name, _, _ in rows]
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise SystemExit(f'--rows {" ".join(unknown)}: not a row of part {part}; its rows are '
                         f'{", ".join(known)}')
    return tuple(row for row in rows if not names or row[0] in names)


def self_distill_part(args, out_dir: str, config: str = SELF_DISTILL_CFG,
                      rows=SELF_DISTILL_ROWS, curves: bool = False, paired: int = 0) -> str:
    """Train (or with ``args.no_train`` only collect) ``rows`` x ``args.seeds`` of ``config``
    and return the report; ``curves`` adds the per-epoch test-error figure and Welch's p.
    Runs go row by row, except the first ``paired`` rows, which go first and seed by seed
    (a part cut short then still compares them at equal numbers of seeds)."""
    full = {'model.backbone.base_channels': 64,
            'train_dataloader.dataset.subset_size': None,
            'param_scheduler': [dict(type='MultiStepLR', by_epoch=True, milestones=[150, 225],
                                     gamma=0.1)],
            'train_cfg.max_epochs': 300, 'train_cfg.val_interval': 10}
    cfg = base_config(config, args.data_root, args.full, full)
    os.makedirs(osp.join(out_dir, 'configs'), exist_ok=True)
    runs = []
    for name, _, overrides in rows:
        variant = copy.deepcopy(cfg)
        variant.merge_from_dict({f'model.{k}': v for k, v in overrides.items()})
        path = osp.join(out_dir, 'configs', f'{name}.py')
        dump_config(variant, path)
        for seed in args.seeds:
            run = f'{name}_s{seed}'
            preds = osp.join(run_dir(out_dir, run), 'preds.pt')  # for the figures
            runs.append(Run(run, path, seed=seed, group=name,
                            options=[f'val_evaluator.save_predictions={preds}']))
    head = paired * len(args.seeds)
    runs[:head] = sorted(runs[:head], key=lambda r: args.seeds.index(r.seed))  # stable
    results = (finished(runs, out_dir) if args.no_train
               else execute_all(runs, out_dir, jobs=args.jobs))
    if any(r['name'] == f'{FULL_METHOD}_s{args.seeds[0]}' for r in results):
        figures(out_dir, f'{FULL_METHOD}_s{args.seeds[0]}')
    if curves and results:
        from mmkd.visualization.seed_curves import plot_seed_curves
        done = {r['name'] for r in results}
        work_dirs = {label: [osp.join(run_dir(out_dir, f'{name}_s{s}'), 'work')
                             for s in args.seeds if f'{name}_s{s}' in done]
                     for name, label, _ in rows}
        plot_seed_curves(work_dirs, osp.join(out_dir, 'figures', 'test_error_curves.png'))
        plot_seed_curves(work_dirs, osp.join(out_dir, 'figures', 'test_nll_curves.png'),
                         'exit4/nll', 'test NLL')
    return self_distill_report(results, cfg.model.backbone.get('num_stages', 4), args.seeds,
                               rows, welch=curves)


def finished(runs, out_dir: str):
    """The result records of the runs of ``runs`` that have finished."""
    records = []
    for run in runs:
        path = osp.join(run_dir(out_dir, run.name), 'result.json')
        if osp.exists(path):
            with open(path) as f:
                records.append(json.load(f))
    return records


def figures(out_dir: str, run: str) -> None:
    """Per-exit accuracy bars and reliability diagrams of one run (the full method, first
    seed), drawn by tools/plot_figures.py into ``<out_dir>/figures``."""
    folder = run_dir(out_dir, run)
    subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools/plot_figures.py'),
                    osp.join(folder, 'work'), '--predictions', osp.join(folder, 'preds.pt'),
                    '--out-dir', osp.join(out_dir, 'figures')], check=True)


SELF_DISTILL_COLUMNS = (('top-1 err', 'top1_err'), ('top-5 err', 'top5_err'), ('NLL', 'nll'),
                        ('ECE', 'ece'), ('AURC', 'aurc'), ('E-AURC', 'eaurc'))


def self_distill_report(results, num_exits: int, seeds, rows=SELF_DISTILL_ROWS,
                        welch: bool = False) -> str:
    """Paper A's Table 1 and 2 forms of ``results`` (rows without a finished run say n/a);
    ``welch`` adds a table of Welch's two-sided p of every row against the baseline."""
    final = f'exit{num_exits}'
    values = {(name, key): [r['metrics'][f'{final}/{key}'] for r in results
                            if r['group'] == name and f'{final}/{key}' in r['metrics']]
              for name, _, _ in rows for _, key in SELF_DISTILL_COLUMNS}
    # Table 1 form: the final classifier's calibration and risk metrics.
    table = []
    for name, label, _ in rows:
        mine = [r for r in results if r['group'] == name]
        cells = [f'{label} ({len(mine)})']
        cells += [mean_std(values[name, key], digits=3 if key == 'nll' else 2)
                  if values[name, key] else 'n/a'
                  for _, key in SELF_DISTILL_COLUMNS]
        cells.append(f"{sum(r['seconds'] for r in mine) / len(mine):.0f}" if mine else 'n/a')
        table.append(cells)
    table1 = markdown_table(['row (runs)', *[c for c, _ in SELF_DISTILL_COLUMNS], 's / run'],
                            table)
    # Table 2 form: top-1 accuracy of every exit and of the exits' ensemble.
    models = [f'exit{i}' for i in range(1, num_exits + 1)] + ['ensemble']
    table = []
    for name, label, _ in rows:
        mine = [r for r in results if r['group'] == name]
        cells = [label]
        for model in models:
            accs = [r['metrics'][f'{model}/top1_acc'] for r in mine
                    if f'{model}/top1_acc' in r['metrics']]
            cells.append(mean_std(accs) if accs else 'n/a')
        table.append(cells)
    table2 = markdown_table(['row', *models], table)
    report = (f'### Self-distillation (paper A), final exit ({final}), mean ± std over '
              f'seeds {list(seeds)}, 10,000 test images\n\n'
              f'Table 1 form (%; AURC and E-AURC ×10³):\n\n{table1}\n\n'
              f'Table 2 form, top-1 accuracy (%) per exit:\n\n{table2}')
    if welch:
        report += '\n\n' + welch_table(values, rows)
    return report


def welch_table(values, rows) -> str:
    """Welch's two-sided p of each row's final-exit metrics against the baseline's; n/a where
    either side has fewer than 2 seeds."""
    table = []
    for name, label, _ in rows[1:]:
        cells = [label]
        for _, key in SELF_DISTILL_COLUMNS:
            a, b = values[name, key], values[rows[0][0], key]
            cells.append(p_cell(a, b))
        table.append(cells)
    return (f'Welch\'s t-test, two-sided p of each row against {rows[0][1]} (same metrics):'
            f'\n\n' + markdown_table(['row', *[c for c, _ in SELF_DISTILL_COLUMNS]], table))


def kdml_part(args, out_dir: str, cfg: Config, metrics, significance, title: str) -> str:
    """Paper B's five variants (and the teacher trained alone) of ``cfg`` over the seeds."""
    paths = write_variant_configs(cfg, out_dir, scratch=True)
    results = execute_all(comparison_runs(paths, args.seeds), out_dir, jobs=args.jobs)
    return f'### {title}\n\n' + comparison_report(results, len(cfg.model.students), metrics,
                                                  significance)


def det_data(args) -> str:
    root = osp.join(args.out_dir, 'fashion_det')
    if not osp.exists(osp.join(root, 'val.txt')):
        cmd = [sys.executable, osp.join(REPO_ROOT, 'tools/data/make_fashion_det.py'), '--out',
               root, '--overwrite']
        if args.data_root:
            cmd += ['--data-root', args.data_root]
        subprocess.run(cmd, check=True)
    return root


PARTS = ('selfdistill', 'selfdistill-long', 'cls', 'det')


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out-dir', default='work_dirs/fashion_mnist')
    parser.add_argument('--parts', nargs='+', choices=PARTS, default=list(PARTS))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--data-root', help='folder of the four Fashion-MNIST IDX files '
                        f'(default {DEFAULT_DATA_ROOT})')
    parser.add_argument('--full', action='store_true', help='paper-scale recipes (GPU)')
    parser.add_argument('--no-train', action='store_true',
                        help='self-distillation parts: report the finished runs only')
    parser.add_argument('--rows', nargs='+', metavar='ROW',
                        help='self-distillation parts: only these rows, e.g. baseline pskd '
                        'pskd-byot-dmfl-grad (default: all of the part\'s rows)')
    add_jobs_argument(parser)
    args = parser.parse_args()
    if len(args.seeds) < 3:
        print(f'note: {len(args.seeds)} seed(s); the README tables use 3', flush=True)
    register_all_modules(init_default_scope=False)
    ensure_fashion_mnist(args.data_root or DEFAULT_DATA_ROOT)
    reports = {}
    for part in args.parts:
        start = time.time()
        out = osp.join(args.out_dir, part)
        print(f'== part {part} -> {out}', flush=True)
        if part == 'selfdistill':
            report = self_distill_part(args, out,
                                       rows=select_rows(SELF_DISTILL_ROWS, args.rows, part))
        elif part == 'selfdistill-long':
            rows = select_rows(LONG_SELF_DISTILL_ROWS, args.rows, part)
            report = self_distill_part(args, out, LONG_SELF_DISTILL_CFG, rows, curves=True,
                                       paired=2)
        elif part == 'cls':
            cfg = base_config(CLS_CFG, args.data_root, args.full, {
                'train_dataloader.dataset.subset_size': None, 'train_cfg.max_epochs': 30,
                'train_cfg.val_interval': 1})
            report = kdml_part(args, out, cfg, ['top1_acc'], 'top1_acc',
                               'KD + ML, classification (paper B Table 2 form)')
        else:
            cfg = base_config(DET_CFG, det_data(args), args.full, {
                'train_dataloader.dataset.indices': None, 'train_cfg.max_epochs': 30,
                'train_cfg.val_interval': 1})
            report = kdml_part(args, out, cfg, ['mIoU', 'acc50', 'AP50', 'AP'], None,
                               'KD + ML, detection on the Fashion-MNIST detection set '
                               '(paper B Table 2 form)')
        minutes = (time.time() - start) / 60
        reports[part] = f'{report}\n\nPart `{part}`: {minutes:.1f} min wall in this call.'
        with open(osp.join(out, 'report.md'), 'w') as f:
            f.write(reports[part] + '\n')
        print(reports[part], flush=True)
    with open(osp.join(args.out_dir, 'report.json'), 'w') as f:
        json.dump(reports, f, indent=1)


if __name__ == '__main__':
    main()
