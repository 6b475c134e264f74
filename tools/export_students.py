"""Export every student of a distiller checkpoint as its own checkpoint + config.

    python tools/export_students.py CONFIG CHECKPOINT --out-dir DIR
    python tools/test.py DIR/student0.py DIR/student0.pth      # same numbers, no distiller

Detection students are written as plain mmdet configs (mmdet's init_detector and tools load
them without mmkd); classification students also as torchvision state dicts where torchvision
has the architecture. One line per student says which, and what it still needs.
"""
import argparse

from mmengine.config import Config

from mmkd.utils import export_notes, export_students, register_all_modules


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out-dir', required=True)
    args = parser.parse_args()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    for cfg_path, ckpt_path in export_students(cfg, args.checkpoint, args.out_dir):
        print(f'{cfg_path}  {ckpt_path}')
    for note in export_notes(cfg):
        print(note)


if __name__ == '__main__':
    main()
