"""Configs as tests and benchmarks use them: no machine here has the ImageNet weights."""
from mmengine.config import Config

from mmkd.utils.pretrained import from_scratch


def scratch_config(path: str) -> Config:
    """``Config.fromfile(path)`` with every model switched to random initialisation (the
    ``--from-scratch`` of tools/train.py)."""
    cfg = Config.fromfile(path)
    from_scratch(cfg)
    return cfg
