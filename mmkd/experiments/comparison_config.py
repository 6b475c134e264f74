"""What every comparison tool does first (tools/compare_kdml.py, compare_detector_kd.py,
kdml_before_after.py): the config with the command line's overrides, each seed once."""
from mmengine.config import Config

from mmkd.utils import register_all_modules, set_data_root


def comparison_config(args) -> Config:
    """``args.config`` with ``args.cfg_options`` merged and ``args.data_root`` set.

    Raises:
        SystemExit: A seed of ``args.seeds`` is given twice (one cached run per variant and
            seed: it would be counted twice).
    """
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f'--seeds {" ".join(map(str, args.seeds))}: give each seed once')
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        set_data_root(cfg, args.data_root)
    return cfg
