"""Host values (image sizes from meta-data) onto the device without waiting for it.

``like.new_tensor(values)`` on a GPU copies from pageable memory, which blocks the Python
thread until the GPU has finished its queue (``torch.cuda.set_sync_debug_mode`` warns). Made
in pinned memory and copied with ``non_blocking=True``, the copy is queued like a kernel.
"""
from typing import Sequence

import torch
from torch import Tensor


def to_device_async(values: Sequence, like: Tensor) -> Tensor:
    """``values`` as a tensor of ``like``'s dtype on ``like``'s device, copied without a
    host wait on CUDA (a plain CPU tensor elsewhere)."""
    host = torch.tensor(values, dtype=like.dtype, pin_memory=like.is_cuda)
    return host.to(like.device, non_blocking=True)
