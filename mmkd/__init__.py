"""mmkd: knowledge distillation for OpenMMLab runners."""
import mmcv
import mmdet
import mmengine
from mmengine.utils import digit_version

from .checkpoint import (install_checkpoint_load_errors, register_atomic_local_backend,
                         register_checkpoint_safe_globals)
from .utils.mmcv_cuda_check import warn_if_mmcv_lacks_cuda_ops
from .version import __version__

_MMCV_RANGE = ('2.1.0', '2.2.0')
_MMENGINE_RANGE = ('0.10.7', '1.0.0')
_MMDET_RANGE = ('3.3.0', '3.4.0')


def _check_version(name, version, bounds):
    low, high = bounds
    if not digit_version(low) <= digit_version(version) < digit_version(high):
        raise ImportError(f'mmkd {__version__} needs {low} <= {name} < {high}, found '
                          f'{version}: run tools/setup_env.sh to install the verified stack.')


_check_version('mmcv', mmcv.__version__, _MMCV_RANGE)
_check_version('mmengine', mmengine.__version__, _MMENGINE_RANGE)
_check_version('mmdet', mmdet.__version__, _MMDET_RANGE)

# mmengine 0.10.7 resumes with torch.load's weights_only=True default (torch >= 2.6);
# allow exactly the types its checkpoints hold (see checkpoint/allowlist.py).
register_checkpoint_safe_globals()
# ... and a refused or truncated checkpoint names its file (same module).
install_checkpoint_load_errors()
# Checkpoints are written atomically through file backend 'atomic_local'
# (checkpoint/atomic_local_backend.py; configs/_base_/default_runtime.py selects it).
register_atomic_local_backend()
# A CPU-only mmcv where torch sees a GPU fails at the first CUDA NMS: said here instead.
warn_if_mmcv_lacks_cuda_ops()

__all__ = ['__version__', 'register_checkpoint_safe_globals']
