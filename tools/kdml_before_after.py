"""Before / after of the three changes that stabilise online KD + ML, one at a time, at one
training budget and one seed set (cumulative stages, each a column):

* ``before`` — one optimiser for all models (one ``clip_grad``), KD and ML at full weight from
  the first iteration, box KD / LD / box ML at every location (what mmkd did before);
* ``per-model`` — + one optimiser wrapper per model (``PerModelOptimWrapperConstructor``);
* ``ramp`` — + KD and ML ramped in (``DistillScheduleHook`` of the config);
* ``region`` — + boxes distilled at the student's positive locations only (today's default;
  classification configs have no box terms, so this stage equals ``ramp`` there and is left
  out).

    python tools/kdml_before_after.py configs/kvasir_kdml_v3.py --out-dir DIR --seeds 0 1 2 \\
        --data-root data/kvasir_sample --from-scratch --cfg-options ...

Every (stage, seed) is a ``tools/train.py`` run, cached like ``tools/compare_kdml.py``'s
(resumable); the report (``<out-dir>/report.md``) gives teacher / student k / ensemble per
stage, mean ± std, and Welch's p of each stage's ensemble against ``before``.
"""
import argparse
import copy
import os
import os.path as osp
import time

from mmengine.config import Config, DictAction

from mmkd.experiments.comparison_config import comparison_config
from mmkd.experiments.kdml_variants import check_metrics, default_metrics
from mmkd.experiments.seeded_runs import (Run, add_jobs_argument, collect, dump_config,
                                          execute_all, markdown_table, mean_std, model_table,
                                          p_cell, write_report)
from mmkd.utils.pretrained import from_scratch

STAGES = (
    ('before', 'before', dict(optim_wrapper=dict(constructor='DefaultOptimWrapperConstructor'),
                              custom_hooks=[], model=dict(box_region='all'))),
    ('per-model', '+ per-model optimisers', dict(custom_hooks=[], model=dict(box_region='all'))),
    ('ramp', '+ KD/ML ramp', dict(model=dict(box_region='all'))),
    ('region', '+ boxes at positives', dict()),
)


def stage_configs(cfg: Config) -> dict:
    """``{stage: config}`` of the stages that apply to ``cfg`` (an online KD + ML config)."""
    det = cfg.model.get('type', '').split('.')[-1] == 'DetKDMLDistiller'
    out = {}
    for name, _, undo in STAGES:
        if name == 'region' and not det:
            continue
        undo = copy.deepcopy(undo)
        if not det:
            undo.pop('model', None)
        stage = copy.deepcopy(cfg)
        stage.merge_from_dict(undo)
        if 'custom_hooks' in undo:
            stage.custom_hooks = []  # merge_from_dict keeps list items it is not given
        out[name] = stage
    return out


def report(results: list, stages: list, num_students: int, metrics: list) -> str:
    labels = [label for name, label, _ in STAGES if name in stages]
    models = ['teacher', *[f'student{k}' for k in range(num_students)], 'ensemble']
    seeds = sorted({r['seed'] for r in results})
    parts = [f'**{m}** (%), mean ± std over {len(seeds)} seeds {seeds}:\n\n' +
             model_table(results, stages, labels, models, m) for m in metrics]
    for metric in metrics if 'before' in stages[:1] and len(stages) > 1 else []:
        key = f'ensemble/{metric}'
        before = collect(results, 'before', key)
        rows = [[label, mean_std(collect(results, s, key)),
                 p_cell(collect(results, s, key), before)]
                for s, label in zip(stages[1:], labels[1:])]
        parts.append(f"Welch's t-test, ensemble {metric} against `before` "
                     f'({mean_std(before)}):\n\n' +
                     markdown_table(['stage', 'ensemble', 'p'], rows))
    return '\n\n'.join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='an online KD + ML config')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--stages', nargs='+', choices=[name for name, _, _ in STAGES],
                        help='run these stages only (default: all that apply); `region` '
                        "alone is today's default, the main job's spread over seeds")
    parser.add_argument('--data-root')
    parser.add_argument('--from-scratch', action='store_true')
    parser.add_argument('--metrics', nargs='+', help='metrics to tabulate (default: the '
                        "task's, as tools/compare_kdml.py chooses them)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    add_jobs_argument(parser)
    args = parser.parse_args()
    cfg = comparison_config(args)
    if args.from_scratch:
        from_scratch(cfg)
    os.makedirs(osp.join(args.out_dir, 'configs'), exist_ok=True)
    runs, stages = [], []
    for name, stage in stage_configs(cfg).items():
        if args.stages and name not in args.stages:
            continue
        path = osp.join(args.out_dir, 'configs', f'{name}.py')
        dump_config(stage, path)
        stages.append(name)
        runs += [Run(f'{name}_s{seed}', path, seed=seed, group=name) for seed in args.seeds]
    # seed-major order: an interrupted comparison has every stage of the first seeds
    runs.sort(key=lambda r: (r.seed, stages.index(r.group)))
    start = time.time()
    results = execute_all(runs, args.out_dir, jobs=args.jobs)
    metrics = args.metrics or default_metrics(results)
    check_metrics(results, metrics)
    write_report(report(results, stages, len(cfg.model.students), metrics), results, start,
                 args.out_dir)


if __name__ == '__main__':
    main()
