"""Benchmarks that print ratios measured side by side in one run (never a timed test).

Each case alternates its contenders repetition by repetition on the same inputs and reports
the median ratio and its spread (min..max over repetitions), so that machine noise hits both
sides alike. Results go to stdout as a table and to ``--out`` as JSON.

    python tools/benchmark.py                  # every case
    python tools/benchmark.py --cases self_distill_step --reps 7
"""
import argparse
import json
import os
import platform

import mmengine
import torch

import mmdet
import mmkd
from mmkd.utils import register_all_modules
from benchmarks import (calibration_metric_time, data_throughput, det_feature_kd,  # tools/
                        det_vs_mmdet_ld, device_steps, iou_metric_time, kdml_cls_step,
                        kdml_cls_val, kdml_cls_vs_torch, kdml_det_step, kdml_det_terms,
                        kdml_students, pskd_allgather, runner_loop, self_distill_exits,
                        self_distill_step)

CASES = {case.NAME: case.run for case in (
    self_distill_step, self_distill_exits, runner_loop, kdml_cls_step, kdml_cls_val,
    kdml_det_step, kdml_det_terms, det_vs_mmdet_ld, kdml_cls_vs_torch, iou_metric_time,
    calibration_metric_time, pskd_allgather, data_throughput, kdml_students,
    det_feature_kd,  # issue 22: PKD, CWD, cross-head step overhead
    device_steps,  # the step rows on --device (GPU): tools/gpu_check.sh
)}
DEFAULT_CASES = [case for case in CASES if case != 'device_steps']


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', nargs='+', choices=list(CASES), default=DEFAULT_CASES)
    parser.add_argument('--device', default='cpu',
                        help='device of the kdml_students and device_steps cases (e.g. cuda)')
    parser.add_argument('--reps', type=int, default=7)
    parser.add_argument('--batch-size', type=int, default=128,
                        help='batch of the ResNet-18 self-distillation cases (paper A: 128)')
    parser.add_argument('--r50-batch-size', type=int, default=64,
                        help='batch of the ResNet-50 self-distillation rows (0: skip them)')
    parser.add_argument('--kdml-img-size', type=int, default=112,
                        help='tile size of the classification KD+ML cases (real: 224)')
    parser.add_argument('--det-img-size', type=int, default=256,
                        help='input size of the detection KD+ML case (real: 512)')
    parser.add_argument('--det-batch-size', type=int, default=4)
    parser.add_argument('--out', default='work_dirs/benchmark.json')
    return parser.parse_args()


def print_table(rows):
    print(f'\nmachine: {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, '
          f'CUDA {torch.cuda.is_available()}')
    print(f'versions: torch {torch.__version__}, mmengine {mmengine.__version__}, '
          f'mmdet {mmdet.__version__}, mmkd {mmkd.__version__}\n')
    print(f'{"benchmark":<52} {"median":>9} {"spread":>17} {"target":>8}  met  detail')
    for r in rows:
        spread = f'{r["spread"][0]:.3f}..{r["spread"][1]:.3f}' if r['spread'] else ''
        target = '' if r['target'] is None else (
            f'< {r["target"]}' if r['unit'] == 's' else f'<= {r["target"]}')
        met = {True: 'yes', False: 'NO', None: ''}[r['met']]
        print(f'{r["name"]:<52} {r["value"]:>9.3f} {spread:>17} {target:>8}  {met:<4} '
              f'{r["detail"]}')


def main():
    args = parse_args()
    register_all_modules()
    rows = [row for case in args.cases for row in CASES[case](args)]
    print_table(rows)
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(rows=rows, torch=torch.__version__, cpus=os.cpu_count()), f, indent=1)
    print(f'\nwritten to {args.out}')


if __name__ == '__main__':
    main()
