import collections
import io
import os
import pickle
import re

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint

import mmkd  # noqa: F401  (registers the allow-list)
from mmkd.checkpoint import allowlist as checkpoint_allowlist
from mmkd.utils import RefusedCheckpointError

# Both ways mmkd loads: torch's weights-only unpickler with the allow-list added (torch >= 2.4)
# and the restricted unpickler of older torch, exercised here on any torch.
PATHS = ['native', 'restricted'] if checkpoint_allowlist.NATIVE_ALLOWLIST else ['restricted']


@pytest.fixture(params=PATHS)
def load_path(request, monkeypatch):
    monkeypatch.setattr(checkpoint_allowlist, 'NATIVE_ALLOWLIST', request.param == 'native')
    return request.param


def roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return checkpoint_allowlist.safe_torch_load(buffer)


class Evil:

    def __reduce__(self):
        return (print, ('executed',))


class GetattrEvil:

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


@pytest.mark.usefixtures('load_path')
class TestCheckpointAllowlist:

    def test_mmengine_checkpoint_contents_load(self):
        buf = HistoryBuffer()
        buf.update(1.5)
        obj = {'message_hub': {'log_scalars': {'train/loss': buf}},
               'meta': {'seed': np.int64(3), 'arr': np.arange(3.0)},
               'param_schedulers': [{'milestones': collections.Counter([150, 225])}]}
        out = roundtrip(obj)
        assert out['message_hub']['log_scalars']['train/loss'].mean() == 1.5
        assert out['meta']['seed'] == 3
        assert out['param_schedulers'][0]['milestones'] == collections.Counter([150, 225])

    def test_arbitrary_object_is_refused(self, capsys):
        with pytest.raises(pickle.UnpicklingError):
            roundtrip({'x': Evil()})
        assert 'executed' not in capsys.readouterr().out

    def test_getattr_only_reaches_history_buffer_methods(self):
        with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer'):
            roundtrip(GetattrEvil())


class WritesMarker:
    """Unpickling it would create ``path``: proof that code from the file ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.mark.usefixtures('load_path')
class TestRefusedCheckpoints:

    @staticmethod
    def evil_checkpoint(tmp_path):
        marker = str(tmp_path / 'executed')
        path = str(tmp_path / 'epoch_1.pth')
        torch.save({'state_dict': {'weight': torch.ones(2, 2), 'bias': torch.ones(2)},
                    'meta': {'epoch': 1, 'note': WritesMarker(marker)}}, path)
        return path, marker

    def test_load_checkpoint_names_file_and_global(self, tmp_path):
        path, marker = self.evil_checkpoint(tmp_path)
        model = torch.nn.Linear(2, 2)
        before = model.weight.detach().clone()
        with pytest.raises(RefusedCheckpointError, match=re.escape(
                f'checkpoint {path} was not loaded: it holds a pickled object outside the '
                'allow-list (io.open)')):
            load_checkpoint(model, path)
        assert not os.path.exists(marker)
        assert torch.equal(model.weight, before)

    def test_runner_resume_is_refused(self, tmp_path):
        path, marker = self.evil_checkpoint(tmp_path)
        runner = Runner(model=ToyModel(), work_dir=str(tmp_path / 'work'))
        with pytest.raises(pickle.UnpicklingError, match=re.escape(path) + ' was not loaded'):
            runner.resume(path)
        assert not os.path.exists(marker)

    def test_truncated_checkpoint_names_file(self, tmp_path):
        path = tmp_path / 'epoch_2.pth'
        torch.save({'state_dict': {'w': torch.ones(100)}}, path)
        path.write_bytes(path.read_bytes()[:200])
        with pytest.raises(RuntimeError, match=re.escape(
                f'checkpoint {path} was not loaded: it is truncated, corrupt or not a PyTorch '
                'checkpoint')):
            load_checkpoint(torch.nn.Linear(2, 2), str(path))


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.linear(inputs)


def test_runner_checkpoint_resumes_through_the_restricted_unpickler(tmp_path, monkeypatch):
    """A whole mmengine checkpoint (message hub, numpy seed, optimiser) as torch 2.1–2.3 load
    it: through the restricted unpickler, equal to torch's weights-only load."""
    from mmengine.logging import MessageHub
    from mmengine.optim import MultiStepLR
    model = ToyModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    hub = MessageHub.get_instance('allowlist_test')
    hub.update_scalar('train/loss', 1.25)
    path = str(tmp_path / 'ckpt.pth')
    torch.save({'meta': {'seed': np.int64(3), 'epoch': 1}, 'state_dict': model.state_dict(),
                'optimizer': optimizer.state_dict(), 'message_hub': hub.state_dict(),
                'param_schedulers': [MultiStepLR(optimizer, milestones=[2, 4]).state_dict()]},
               path)
    monkeypatch.setattr(checkpoint_allowlist, 'NATIVE_ALLOWLIST', False)
    restricted = checkpoint_allowlist.safe_torch_load(path)
    assert restricted['message_hub']['log_scalars']['train/loss'].current() == 1.25
    if 'native' in PATHS:
        native = torch.load(path, weights_only=True)
        assert restricted.keys() == native.keys()
        for key, value in native['state_dict'].items():
            assert torch.equal(value, restricted['state_dict'][key])
