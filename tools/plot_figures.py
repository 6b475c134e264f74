"""Turn a work directory into PNG figures.

    tools/plot_figures.py WORK_DIR [--predictions PRED.pt] [--detections DIR] --out-dir DIR

writes into ``--out-dir``:

- ``training_curves.png``: losses per model vs iteration and val metrics vs epoch, from every
  ``<timestamp>/vis_data/scalars.json`` of WORK_DIR (runs concatenated in time order, so a
  resumed run continues the curves; a run started from scratch replaces them);
  ``--newest-only`` reads only the newest one;
- ``accuracy_bars.png``: ``--metric`` (default ``top1_acc``, else ``mIoU``) of every model,
  from the newest test (``tools/test.py``) or val metrics found in WORK_DIR;
- ``reliability_<model>.png`` for every model of ``--predictions``, the file that
  ``MultiModelClsMetric(save_predictions=...)`` writes, e.g. ``tools/test.py CONFIG CKPT
  --cfg-options test_evaluator.save_predictions=PRED.pt``;
- ``detections.png``: up to 6 pictures of ``--detections``, the ``--show-dir`` folder of
  ``tools/test.py``.

A figure whose input is missing is skipped with a note; it is an error when none is written.
"""
import argparse
import glob
import os.path as osp
import sys

import torch

from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.visualization.figures import (find_scalars_files, last_metrics, plot_accuracy_bars,
                                        plot_detection_grid, plot_reliability_diagram,
                                        plot_training_curves)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw the PNG figures of a work directory')
    parser.add_argument('work_dir', help='work dir of tools/train.py (or tools/test.py)')
    parser.add_argument('--out-dir', required=True, help='folder for the PNG files')
    parser.add_argument('--predictions', help='.pt file of MultiModelClsMetric(save_predictions)')
    parser.add_argument('--detections', help='the --show-dir folder of tools/test.py')
    parser.add_argument('--metric', help='metric of accuracy_bars.png (default: top1_acc, '
                        'else mIoU)')
    parser.add_argument('--num-bins', type=int, default=10, help='reliability diagram bins')
    parser.add_argument('--newest-only', action='store_true',
                        help='training curves of the newest run only')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    written = []

    scalars = find_scalars_files(args.work_dir)
    if args.newest_only:
        scalars = scalars[-1:]
    if scalars:
        written.append(plot_training_curves(scalars, osp.join(args.out_dir,
                                                              'training_curves.png')))
    else:
        print(f'skipped training_curves.png: no <timestamp>/vis_data/scalars.json in '
              f'{args.work_dir}')

    metrics = last_metrics(args.work_dir)
    names = {k.rpartition('/')[2] for k in metrics}
    metric = args.metric or next((m for m in ('top1_acc', 'mIoU') if m in names), 'top1_acc')
    if metrics:
        written.append(plot_accuracy_bars(metrics, osp.join(args.out_dir, 'accuracy_bars.png'),
                                          metric=metric))
    else:
        print(f'skipped accuracy_bars.png: no val or test metrics in {args.work_dir}')

    if args.predictions:
        saved = safe_torch_load(args.predictions)
        for model, probs in saved['probs'].items():
            written.append(plot_reliability_diagram(
                probs, saved['labels'], osp.join(args.out_dir, f'reliability_{model}.png'),
                num_bins=args.num_bins, title=model))

    if args.detections:
        pictures = sorted(p for ext in ('png', 'jpg', 'jpeg')
                          for p in glob.glob(osp.join(glob.escape(args.detections), f'*.{ext}')))
        if pictures:
            written.append(plot_detection_grid(pictures, osp.join(args.out_dir,
                                                                  'detections.png')))
        else:
            print(f'skipped detections.png: no picture in {args.detections}')

    if not written:
        sys.exit(f'no figure written: nothing to plot in {args.work_dir}')
    for path in written:
        print(path)
    return written


if __name__ == '__main__':
    main()
