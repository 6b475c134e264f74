"""A CPU-only mmcv on a machine whose torch sees a GPU is said at import, with what to do."""
import pytest
import torch
from mmcv import ops

from mmkd.utils import mmcv_cuda_check


@pytest.mark.parametrize('gpu,compiled,warns', [
    (True, 'not available', True), (True, '12.1', False), (False, 'not available', False)])
def test_warns_only_for_cpu_ops_with_a_visible_gpu(monkeypatch, gpu, compiled, warns):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpu)
    monkeypatch.setattr(ops, 'get_compiling_cuda_version', lambda: compiled)
    assert mmcv_cuda_check.mmcv_cuda_ops_missing() is warns
    if warns:
        with pytest.warns(RuntimeWarning, match='tools/setup_env.sh'):
            mmcv_cuda_check.warn_if_mmcv_lacks_cuda_ops()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_this_gpu_machine_has_mmcv_cuda_ops():
    assert not mmcv_cuda_check.mmcv_cuda_ops_missing()
