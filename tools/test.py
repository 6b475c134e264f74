"""Evaluate a checkpoint and print every model side by side (exits / teacher, students,
ensemble)."""
import argparse

from mmengine.runner import Runner

from mmkd.checkpoint.strict_load import load_checkpoint_strictly
from mmkd.utils import (add_run_arguments, format_metric_table, from_scratch, load_run_config,
                        register_all_modules)
from mmkd.utils.test_flags import add_test_arguments, apply_test_flags
from mmkd.utils.work_dir import wait_for_new_log_folder


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_test_arguments(parser)  # mmdet's --out, --show, --show-dir, --wait-time, --tta
    add_run_arguments(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_run_config(args)
    # Every weight comes from the checkpoint: never fetch ImageNet weights to overwrite them.
    from_scratch(cfg)
    cfg.load_from = None  # loaded strictly below, once the runner has built the model
    apply_test_flags(cfg, args)
    wait_for_new_log_folder(cfg.work_dir)
    runner = Runner.from_cfg(cfg)
    load_checkpoint_strictly(runner, args.checkpoint, args.config)
    metrics = runner.test()
    if runner.rank == 0:
        print(format_metric_table(metrics))
        # One headline metric across models: paper A Table 2 form / paper B's IoU.
        metric = 'top1_acc' if any(k.endswith('/top1_acc') for k in metrics) else 'mIoU'
        print(f'\n{metric} (%) by model:')
        print(format_metric_table(metrics, transpose_metric=metric))


if __name__ == '__main__':
    main()
