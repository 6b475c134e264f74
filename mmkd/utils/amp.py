"""``tools/train.py --amp``: mixed precision on the device the run has."""
import torch
from mmengine.config import Config


def enable_amp(cfg: Config) -> str:
    """Switch ``cfg.optim_wrapper`` (one wrapper, or the shared settings of
    ``PerModelOptimWrapperConstructor``'s per-model wrappers) to mixed precision.

    With a GPU: mmengine's ``AmpOptimWrapper``, fp16 with a dynamic loss scale. Without one:
    ``mmkd.AutocastOptimWrapper``, bfloat16 (the only dtype of CPU autocast), no loss scale.

    Returns:
        str: What was chosen, for the log.
    """
    wrapper = cfg.optim_wrapper
    if torch.cuda.is_available():
        wrapper.type, wrapper.loss_scale, wrapper.dtype = 'AmpOptimWrapper', 'dynamic', 'float16'
        return 'fp16 autocast with a dynamic loss scale (AmpOptimWrapper)'
    wrapper.type, wrapper.dtype = 'mmkd.AutocastOptimWrapper', 'bfloat16'
    wrapper.pop('loss_scale', None)
    return 'bfloat16 autocast on the CPU (AutocastOptimWrapper, no loss scale)'
