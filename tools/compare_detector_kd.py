"""The detector-distillation comparison: offline teacher → one student over several seeds,
each of mmkd's terms (LD, PKD, CWD, cross-head) added alone to logit + box KD, against the
student alone and mmdet's LD distiller, then the best combination and the best combination
with two students and mutual learning (mmkd/experiments/detector_kd_variants.py).

    python tools/compare_detector_kd.py \\
        configs/fashion_mnist/det-kd_gfl-r18w32c32-to-r18w8x2_1xb8-6e_fashion-det-multi.py \\
        --out-dir work_dirs/compare_detector_kd --seeds 0 1 2 3 4

Phase 1 trains the teacher, the student alone, mmdet's LD and the single-term variants for
every seed; phase 2 picks the best combination from phase 1's mean AP (or ``--best``) and
trains it with one and with two students (a combination of one term is that term's phase-1
runs: not trained twice). Every run is cached (resumable); the report goes
to ``<out-dir>/report.md``.
"""
import argparse
import time

from mmengine.config import DictAction

from mmkd.experiments.comparison_config import comparison_config
from mmkd.experiments.detector_kd_variants import (SINGLE, TERMS, choose_best,
                                                   comparison_report, comparison_runs,
                                                   phase2_groups, write_variant_configs)
from mmkd.experiments.seeded_runs import add_jobs_argument, execute_all, write_report


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='a DetKDMLDistiller config with a teacher and two '
                        'students')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--data-root')
    parser.add_argument('--from-scratch', action='store_true',
                        help='random initialisation instead of the ImageNet weights')
    parser.add_argument('--best', nargs='*', choices=list(TERMS),
                        help='the best combination\'s terms (default: chosen from phase 1)')
    parser.add_argument('--phase1-only', action='store_true',
                        help='stop after the single-term runs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    add_jobs_argument(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = comparison_config(args)
    start = time.time()
    paths = write_variant_configs(cfg, args.out_dir, args.from_scratch)
    runs = comparison_runs(paths, args.seeds, SINGLE)
    print(f'phase 1: {len(runs)} runs into {args.out_dir}', flush=True)
    results = execute_all(runs, args.out_dir, jobs=args.jobs)
    best = args.best if args.best is not None else choose_best(results)
    if not args.phase1_only:
        print(f'phase 2: best combination = kd + {" + ".join(best) or "nothing"}', flush=True)
        paths = write_variant_configs(cfg, args.out_dir, args.from_scratch, best)
        runs = comparison_runs(paths, args.seeds, phase2_groups(best))
        results = execute_all(runs, args.out_dir, jobs=args.jobs)
    write_report(comparison_report(results, best=None if args.phase1_only else best), results,
                 start, args.out_dir)


if __name__ == '__main__':
    main()
