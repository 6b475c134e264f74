"""Paper B's comparison at one training budget: students alone, KD only, ML only, KD + ML
online and KD + ML offline (teacher trained alone first), over several seeds, printed in
paper B's Table 2 form (teacher / student k / ensemble, mean ± std).

    python tools/compare_kdml.py configs/kvasir_kdml_v3.py --out-dir work_dirs/compare \\
        --seeds 0 1 2 --data-root data/kvasir_sample --from-scratch --cfg-options ...

Every (variant, seed) run is a ``tools/train.py`` run whose final validation is the result;
a finished run is not trained again, so an interrupted comparison resumes where it stopped;
a run recorded under another resolved config (another budget, other overrides) is refused,
not mixed into the table, and every recorded result is checked (JSON, finite, % in [0, 100]).
The report is written to ``<out-dir>/report.md``, every run's record to
``<out-dir>/results.json``. ``--variants`` trains and tabulates a subset (the offline
variant brings its teacher).
"""
import argparse
import time

from mmengine.config import DictAction

from mmkd.experiments.comparison_config import comparison_config
from mmkd.experiments.kdml_variants import (GROUPS, check_metrics, comparison_report,
                                            comparison_runs, default_metrics,
                                            write_variant_configs)
from mmkd.experiments.seeded_runs import add_jobs_argument, execute_all, write_report


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='an online KD + ML config')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--data-root')
    parser.add_argument('--from-scratch', action='store_true',
                        help='random initialisation instead of the ImageNet weights')
    parser.add_argument('--metrics', nargs='+',
                        help='metrics to tabulate (keys after "<model>/"); default: top1_acc '
                        '(and ece) for classification, mIoU and AP50 for detection')
    parser.add_argument('--significance', help='metric for Welch\'s t-test of the KD + ML '
                        'ensembles against the KD-only and the students-alone ensembles '
                        '(default: the first metric)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='overrides applied to the KD + ML config before the variants '
                        'are derived (the same budget for every variant)')
    parser.add_argument('--variants', nargs='+', choices=GROUPS, metavar='VARIANT',
                        help='train and tabulate only these (default: all of '
                        f'{" ".join(GROUPS)}); kdml-offline brings the teacher along')
    add_jobs_argument(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = comparison_config(args)
    paths = write_variant_configs(cfg, args.out_dir, scratch=args.from_scratch)
    runs = comparison_runs(paths, args.seeds, variants=args.variants)
    print(f'{len(runs)} runs ({len(args.seeds)} seeds x {len(runs) // len(args.seeds)}) '
          f'into {args.out_dir}', flush=True)
    start = time.time()
    results = execute_all(runs, args.out_dir, jobs=args.jobs)
    metrics = args.metrics or default_metrics(results)
    check_metrics(results, metrics)
    report = comparison_report(results, len(cfg.model.students), metrics,
                               args.significance or metrics[0])
    write_report(report, results, start, args.out_dir)


if __name__ == '__main__':
    main()
