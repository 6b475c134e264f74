"""to_device_async: host values in the dtype and on the device of a reference tensor."""
import pytest
import torch

from mmkd.models.utils.host_copy import to_device_async


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.int64])
def test_values_dtype_and_device_follow_the_reference(dtype):
    like = torch.zeros(3, dtype=dtype)
    out = to_device_async([[640, 480] * 2, [32, 16] * 2], like)
    assert out.dtype == dtype and out.device == like.device and out.shape == (2, 4)
    assert out.tolist() == [[640, 480, 640, 480], [32, 16, 32, 16]]
    assert not out.is_pinned()  # CPU reference: a plain tensor, no CUDA needed


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_on_cuda_the_copy_does_not_wait_for_the_gpu():
    like = torch.zeros(1, device='cuda')
    torch.cuda.set_sync_debug_mode('error')
    try:
        out = to_device_async([1.5, 2.5], like)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert out.device == like.device and out.cpu().tolist() == [1.5, 2.5]
