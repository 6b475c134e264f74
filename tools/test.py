"""Evaluate a checkpoint and print every model side by side (exits / teacher, students,
ensemble)."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmkd.utils import (format_metric_table, register_all_modules, resolve_model, set_data_root,
                        setup_launcher)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation results')
    parser.add_argument('--data-root', help='use this data_root for every dataloader')
    parser.add_argument('--show-dir', help='detection: save a picture per image with the '
                        'ground truth, each model\'s top box and the ensemble\'s box here')
    parser.add_argument('--show-max', type=int, default=0,
                        help='with --show-dir: at most this many pictures (0: all)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs (xxx=yyy format)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        set_data_root(cfg, args.data_root)
    resolve_model(cfg)
    setup_launcher(cfg, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='DetComparisonHook', out_dir=args.show_dir, max_images=args.show_max)]
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if runner.rank == 0:
        print(format_metric_table(metrics))
        print('\ntop-1 accuracy (%) by model:')
        print(format_metric_table(metrics, transpose_metric='top1_acc'))


if __name__ == '__main__':
    main()
