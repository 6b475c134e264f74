import collections
import io
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import mmkd  # noqa: F401  (registers the allow-list)


def roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


class Evil:

    def __reduce__(self):
        return (print, ('executed',))


class GetattrEvil:

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


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
