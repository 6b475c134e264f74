"""Write the bundled Kvasir-SEG-format sample (``data/kvasir_sample``): generated images in the
real layout (images/, masks/, kavsir_bboxes.json) with official-style train.txt / val.txt."""
import argparse
import json
import os.path as osp

from mmkd.testing import write_kvasir_seg, write_split_files


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/kvasir_sample')
    parser.add_argument('--num-images', type=int, default=144)
    parser.add_argument('--num-val', type=int, default=48)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    write_kvasir_seg(args.out, num_images=args.num_images, seed=args.seed,
                     img_size_range=((160, 224), (192, 256)), jpeg_quality=85)
    with open(osp.join(args.out, 'kavsir_bboxes.json')) as f:
        ids = sorted(json.load(f))
    write_split_files(args.out, ids[args.num_val:], ids[:args.num_val])
    print(args.out)


if __name__ == '__main__':
    main()
