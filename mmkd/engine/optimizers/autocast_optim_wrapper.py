from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmkd.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Mixed precision without a loss scale: the forward pass under ``torch.autocast`` in
    ``dtype`` on the model's device, the backward pass and the step as :class:`OptimWrapper`.

    For bfloat16, above all on the CPU, where mmengine's ``AmpOptimWrapper`` refuses to run
    (it asserts a GPU and scales the loss for fp16). bfloat16 has fp32's 8-bit exponent, so
    gradients do not underflow and need no loss scale. ``tools/train.py --amp`` picks this
    wrapper on a machine without GPU and ``AmpOptimWrapper`` (fp16, dynamic loss scale) on a
    GPU. mmkd's KD and mutual-learning terms upcast their inputs and run in fp32 under either.

    Args:
        dtype (str | torch.dtype): The autocast dtype. Defaults to ``'bfloat16'``.
        **kwargs: Passed to :class:`OptimWrapper`.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f'optim_wrapper.dtype must be bfloat16 or float16, got {dtype!r}')

    @contextmanager
    def optim_context(self, model: nn.Module):
        param = next(model.parameters(), None)
        device_type = param.device.type if param is not None else 'cpu'
        if device_type == 'cpu' and self.cast_dtype != torch.bfloat16:
            raise ValueError('optim_wrapper.dtype=float16 needs a GPU: CPU autocast runs in '
                             'bfloat16 only')
        with super().optim_context(model), torch.autocast(device_type, dtype=self.cast_dtype):
            yield
