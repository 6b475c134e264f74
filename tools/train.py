"""Train a model from an mmkd (or mmdet) config with an mmengine Runner."""
import argparse

from mmengine.logging import print_log
from mmengine.runner import Runner

from mmkd.utils import add_run_arguments, load_run_config, register_all_modules
from mmkd.utils.amp import enable_amp
from mmkd.utils.download_hint import explain_download_errors
from mmkd.utils.work_dir import check_work_dir, resume_checkpoint, wait_for_new_log_folder


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 with a dynamic loss scale on a GPU, '
                        'bfloat16 on the CPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr linearly with the total batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or from the latest one in work_dir if no path')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='train in a work_dir that already holds checkpoints, replacing them (without '
        'it, such a work_dir is refused unless --resume is given)')
    add_run_arguments(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_run_config(args)
    if args.amp:
        print_log(f'--amp: {enable_amp(cfg)}', logger='current')
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    # Both checks come before the runner, which creates the work dir and its log folder.
    check_work_dir(cfg.work_dir, args.resume, args.overwrite)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, resume_checkpoint(cfg.work_dir)
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    wait_for_new_log_folder(cfg.work_dir)
    with explain_download_errors(cfg, args.config):  # ImageNet weights, when not cached
        Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
