"""Write the bundled MSI/MSS tile samples: ``data/msi_sample`` (Kaggle layout) and
``data/msi_sample_kather`` (Kather/Zenodo layout)."""
import argparse

from mmkd.testing import write_msi_tiles


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/msi_sample')
    parser.add_argument('--out-kather', default='data/msi_sample_kather')
    parser.add_argument('--patients', type=int, default=12)
    parser.add_argument('--tiles-per-patient', type=int, default=8)
    parser.add_argument('--kather-patients', type=int, default=6)
    parser.add_argument('--kather-tiles-per-patient', type=int, default=4)
    parser.add_argument('--img-size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    print(write_msi_tiles(args.out, 'kaggle', args.patients, args.tiles_per_patient,
                          args.img_size, args.seed))
    print(write_msi_tiles(args.out_kather, 'kather', args.kather_patients,
                          args.kather_tiles_per_patient, args.img_size, args.seed))


if __name__ == '__main__':
    main()
