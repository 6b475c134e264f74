"""A CPU-only mmcv on a machine whose torch sees a GPU, said at ``import mmkd``.

mmcv compiles its CUDA ops only when torch saw a GPU (or ``FORCE_CUDA=1``) at build time.
A wheel built elsewhere, or a build with the GPU hidden, imports fine and trains on the CPU,
but the first NMS, focal loss or RoI op on CUDA tensors (mmdet's heads, the ensemble) fails
deep inside a training step. The set-up is what to fix, so this says so up front.
"""
import warnings


def mmcv_cuda_ops_missing() -> bool:
    """True if torch sees a CUDA GPU but mmcv's ops were compiled without CUDA."""
    import torch
    if not torch.cuda.is_available():
        return False
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() == 'not available'


def warn_if_mmcv_lacks_cuda_ops() -> None:
    if mmcv_cuda_ops_missing():
        warnings.warn(
            'torch sees a CUDA GPU but mmcv was built without its CUDA ops: mmdet\'s NMS, focal '
            'loss and RoI ops will fail on CUDA tensors at their first use. Rebuild mmcv where '
            'torch sees the GPU (bash tools/setup_env.sh builds it with FORCE_CUDA=1 for this '
            'GPU) or install OpenMMLab\'s prebuilt CUDA wheel (docs/get_started.md, GPUs); '
            'CUDA_VISIBLE_DEVICES= trains on the CPU meanwhile.', RuntimeWarning, stacklevel=3)
