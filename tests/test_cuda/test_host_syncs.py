"""No host<->device copy or GPU wait in mmkd's code during a training iteration.

Counted on the CPU by :class:`mmkd.testing.host_sync.HostSyncCounter` (``.item()``,
``.cpu()``, ``bool(tensor)``, ``nonzero``, boolean masks, tensors made from host data, ...)
over whole runner iterations (hooks + ``train_step``: data preprocessor, forward, losses,
backward, every optimiser's step), after a first iteration (lazy set-up). Attributed by the
file that makes the call, and asserted for mmkd's files. Not counted against mmkd:

* mmengine's logging: ``RuntimeInfoHook`` / ``LoggerHook`` read every logged scalar with
  ``.item()`` each iteration, and ``OptimWrapper`` logs ``float(grad_norm)`` when
  ``clip_grad`` is set: the log needs the numbers on the host;
* mmdet's dense heads and assigners (GFL / ATSS: ``nonzero``, boolean masks, ``.item()`` of
  the positive count): third-party code mmkd calls as it is;
* :data:`ALLOWED`: mmkd's finite-loss guard reads one flag per step, on purpose, to stop
  before an optimiser step on a NaN/inf loss (``mmkd/models/utils/finite_loss.py``); image
  sizes from meta-data go to the device through pinned memory with ``non_blocking=True``
  (``mmkd/models/utils/host_copy.py``): a queued copy, not a wait.

On a GPU, tests/test_cuda/test_cuda_devices.py asks CUDA itself (``set_sync_debug_mode``).
On an H200 it found three blocking ``new_tensor`` copies this counter did not count then
(det_kdml_distiller.py, single_box_regressor.py, multi_exit_distiller.py); it counts them now.
"""
import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop, Runner

from mmkd.registry import LOOPS
from mmkd.testing.host_sync import HostSyncCounter
from mmkd.testing.tiny_runs import KINDS, tiny_run_cfg

ALLOWED = {('item', 'mmkd/models/utils/finite_loss.py'),
           ('tensor(host data)', 'mmkd/models/utils/host_copy.py')}
COUNTED = []


@LOOPS.register_module(force=True)  # test-only loop; re-imports must not fail
class HostSyncCountingLoop(EpochBasedTrainLoop):
    """Counts host syncs in every iteration but the first."""

    def run_iter(self, idx, data_batch) -> None:
        if self._iter == 0:
            return super().run_iter(idx, data_batch)
        with HostSyncCounter() as counter:
            super().run_iter(idx, data_batch)
        COUNTED.append(counter)


def mmkd_calls(counter):
    return {(kind, where): n for (kind, where), n in counter.by_package().get('mmkd', {}).items()
            if (kind, where.rsplit(':', 1)[0]) not in ALLOWED}


@pytest.mark.parametrize('kind', KINDS)
def test_no_host_sync_in_mmkd_training_iterations(kind, tmp_path):
    cfg = tiny_run_cfg(kind, str(tmp_path), batch_size=2)
    cfg.train_cfg.type = 'mmkd.HostSyncCountingLoop'
    COUNTED.clear()
    Runner.from_cfg(cfg).train()
    assert len(COUNTED) >= 1
    for counter in COUNTED:
        assert not mmkd_calls(counter), counter.report()
        flags = sum(n for (kind_, where), n in counter.by_package().get('mmkd', {}).items()
                    if kind_ == 'item')
        assert flags <= 1, counter.report()  # the finite-loss flag, once per step


def test_counter_finds_each_kind_of_sync():
    x = torch.arange(6.)
    with HostSyncCounter() as counter:
        x.sum().item()
        bool(x.any())
        x[x > 2]  # seen by the mode on torch >= 2.2, by a wrapped __getitem__ on torch 2.1
        x[x > 4] = 0
        x.nonzero()
        torch.tensor([1., 2.])
        x.new_tensor([1., 2.])
        x.new_full((2, ), 3.)  # a fill on the device: no host data
        x.to(torch.float64)  # a dtype cast: not a copy between devices
        x.to('cpu')  # the host named outright: a copy whenever x is on a GPU
        torch.as_tensor(x)  # from a tensor: no host data
    kinds = sorted(kind for kind, _ in counter.calls)
    assert kinds == ['__bool__', '__getitem__[bool mask]', '__setitem__[bool mask]', 'item',
                     'new_tensor(host data)', 'nonzero', 'tensor(host data)', 'to(cpu)']
    assert '__getitem__' not in vars(torch.Tensor)  # indexing as it was (torch 2.1)
    assert set(counter.by_package()) == {'other'}  # this test file
