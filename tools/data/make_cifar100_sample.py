"""Write the bundled CIFAR-100-format sample (``data/cifar100_sample``)."""
import argparse

from mmkd.testing import write_cifar100


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/cifar100_sample')
    parser.add_argument('--train-per-class', type=int, default=10)
    parser.add_argument('--test-per-class', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    print(write_cifar100(args.out, args.train_per_class, args.test_per_class, seed=args.seed))


if __name__ == '__main__':
    main()
