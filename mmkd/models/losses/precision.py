import torch
from torch import Tensor

_LOW = (torch.float16, torch.bfloat16)


def upcast(x: Tensor) -> Tensor:
    """``x`` in fp32 when it is fp16 / bf16 (as autocast leaves a head's outputs), else as it
    is (fp32 and fp64 unchanged). The KD losses compute their softmaxes, logarithms and KL
    sums on upcast inputs: in half precision the small probabilities that carry the dark
    knowledge round away and near-equal terms cancel badly."""
    return x.float() if x.dtype in _LOW else x
