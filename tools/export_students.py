"""Export every student of a distiller checkpoint as its own checkpoint + config.

    python tools/export_students.py CONFIG CHECKPOINT --out-dir DIR
    python tools/test.py DIR/student0.py DIR/student0.pth      # same numbers, no distiller

The config the students are exported from is the one the run dumped beside its checkpoint
(``<checkpoint folder>/<config name>``: its ``--data-root`` and ``--cfg-options`` included)
when there is one, else CONFIG; ``--data-root`` / ``--cfg-options`` apply on top. The output
folder must be empty or new (``--overwrite`` replaces it whole).

Detection students are written as plain mmdet configs (mmdet's init_detector and tools load
them without mmkd); classification students also as torchvision state dicts where torchvision
has the architecture. One line per student says which, and what it still needs.
"""
import argparse

from mmkd.export.students import export_config, prepare_out_dir
from mmkd.utils import export_notes, export_students, register_all_modules
from mmkd.utils.cfg_options import CfgOptionsAction


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--data-root', help='use this data_root for every dataloader of the '
                        'exported configs (e.g. data/kvasir_sample)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings (key=value), as in tools/train.py')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a non-empty --out-dir whole (its files are removed)')
    args = parser.parse_args()
    register_all_modules(init_default_scope=False)
    prepare_out_dir(args.out_dir, args.overwrite, keep=[args.checkpoint, args.config])
    cfg, source = export_config(args.config, args.checkpoint, args.data_root,
                                args.cfg_options)
    print(f'config: {source}')
    for cfg_path, ckpt_path in export_students(cfg, args.checkpoint, args.out_dir):
        print(f'{cfg_path}  {ckpt_path}')
    for note in export_notes(cfg):
        print(note)


if __name__ == '__main__':
    main()
