"""Write the Fashion-MNIST detection set: one real article per image on a mucosa-like texture,
in the exact Kvasir-SEG layout (images/, masks/, kavsir_bboxes.json, train.txt / val.txt), so
KvasirSegDataset and the configs/kvasir pipeline read it unchanged. Not committed: write it
where you train, e.g. data/fashion_det."""
import argparse
import sys
import time

from mmkd.datasets.fashion_det_writer import write_fashion_det
from mmkd.datasets.fashion_mnist_dataset import DEFAULT_DATA_ROOT


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--num-train', type=int, default=1000,
                        help='train images, articles from the IDX train split')
    parser.add_argument('--num-val', type=int, default=200,
                        help='val images, articles from the IDX t10k split')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--scale-range', type=float, nargs=2, default=(0.3, 0.7),
                        metavar=('LOW', 'HIGH'),
                        help='article side as a fraction of the image side')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT,
                        help='folder of the Fashion-MNIST IDX files')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the images/ and masks/ already in --out')
    args = parser.parse_args()
    start = time.perf_counter()
    try:
        counts = write_fashion_det(args.out, data_root=args.data_root,
                                   num_train=args.num_train, num_val=args.num_val,
                                   size=args.size, scale_range=tuple(args.scale_range),
                                   seed=args.seed, overwrite=args.overwrite)
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')  # says where it looked and how to install the files
    print(f'{args.out}: {counts["train"]} train + {counts["val"]} val images of '
          f'{args.size}x{args.size} in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
