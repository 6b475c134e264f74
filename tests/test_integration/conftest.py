import pytest
import torch


@pytest.fixture(scope='module')
def one_thread():
    """Tiny models: one intra-op thread, no OpenMP spin-waits on a shared CPU (use with
    ``pytestmark = pytest.mark.usefixtures('one_thread')``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
