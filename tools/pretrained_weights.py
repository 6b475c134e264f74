"""List the weight files a config's models load at initialisation, and whether each is cached.

    python tools/pretrained_weights.py configs/kvasir_kdml_v3.py

On a machine without internet, download the listed URLs elsewhere and copy each file to the
path shown ($TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints): torchvision
and mmengine then load them from there instead of downloading.
"""
import argparse

from mmengine.config import Config

from mmkd.utils import pretrained_files, register_all_modules


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    args = parser.parse_args()
    register_all_modules(init_default_scope=False)
    rows = pretrained_files(Config.fromfile(args.config))
    if not rows:
        print(f'{args.config}: every model starts from random weights; nothing to fetch')
    for row in rows:
        print(f"{row['present']:>3}  {row['path']}  <- {row['url']}  ({row['key']})")
    missing = sum(row['present'] == 'no' for row in rows)
    if missing:
        print(f'{missing} file(s) missing: training will try to download them '
              '(or pass --from-scratch to tools/train.py)')


if __name__ == '__main__':
    main()
