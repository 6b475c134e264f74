"""Write a Fashion-MNIST detection set. Not committed: write it where you train.

Default: one real article per image on a mucosa-like texture, in the exact Kvasir-SEG layout
(images/, masks/, kavsir_bboxes.json, train.txt / val.txt), so KvasirSegDataset and the
configs/kvasir pipeline read it unchanged (e.g. --out data/fashion_det).

--multi: 1-4 articles of the 10 classes per image, sides 16-64 px, partly hidden by each
other, with unlabelled fragments as clutter, in COCO format (images/, annotations/train.json,
annotations/val.json) for mmdet's CocoDataset (e.g. --out data/fashion_det_multi, the
configs/fashion_mnist/det-*_fashion-det-multi.py data root; docs/fashion_det_multi.md)."""
import argparse
import sys
import time

from mmkd.datasets.fashion_det_multi_writer import write_fashion_det_multi
from mmkd.datasets.fashion_det_writer import write_fashion_det
from mmkd.datasets.fashion_mnist_dataset import DEFAULT_DATA_ROOT


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--multi', action='store_true',
                        help='several articles of the 10 classes per image, COCO format')
    parser.add_argument('--num-train', type=int, default=1000,
                        help='train images, articles from the IDX train split')
    parser.add_argument('--num-val', type=int, default=200,
                        help='val images, articles from the IDX t10k split')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--scale-range', type=float, nargs=2, default=(0.3, 0.7),
                        metavar=('LOW', 'HIGH'),
                        help='one article per image: its side as a fraction of the image side')
    parser.add_argument('--side-range', type=int, nargs=2, default=(16, 64),
                        metavar=('LOW', 'HIGH'),
                        help='--multi: article side in pixels (log-uniform)')
    parser.add_argument('--num-range', type=int, nargs=2, default=(1, 4),
                        metavar=('LOW', 'HIGH'), help='--multi: articles per image')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT,
                        help='folder of the Fashion-MNIST IDX files')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the images/ and masks/ (annotations/) already in --out')
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.perf_counter()
    common = dict(data_root=args.data_root, num_train=args.num_train, num_val=args.num_val,
                  size=args.size, seed=args.seed, overwrite=args.overwrite)
    try:
        if args.multi:
            counts = write_fashion_det_multi(args.out, side_range=tuple(args.side_range),
                                             num_range=tuple(args.num_range), **common)
        else:
            counts = write_fashion_det(args.out, scale_range=tuple(args.scale_range), **common)
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')  # says where it looked and how to install the files
    articles = (f' ({counts["train_articles"]} + {counts["val_articles"]} articles)'
                if args.multi else '')
    print(f'{args.out}: {counts["train"]} train + {counts["val"]} val images of '
          f'{args.size}x{args.size}{articles} in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
