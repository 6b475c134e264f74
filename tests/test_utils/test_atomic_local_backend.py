"""Checkpoints written through the 'atomic_local' backend survive a failed or killed write."""
import errno
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.hooks import Hook
from mmengine.runner import Runner, save_checkpoint

import mmkd.checkpoint.atomic_local_backend as atomic_module
from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.testing import scratch_config, write_msi_tiles
from mmkd.utils import AtomicLocalBackend, set_data_root

BACKEND_ARGS = dict(backend='atomic_local')


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if '.tmp-' in p.name)


class HalfWriteThenFail:
    """A file whose write stores half the bytes, then fails as a full disk would."""

    def __init__(self, path, mode):
        self.file = open(path, mode)

    def write(self, data):
        self.file.write(data[:len(data) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, 'No space left on device')

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_runtime_config_selects_the_backend():
    cfg = scratch_config('configs/_base_/default_runtime.py')
    assert cfg.default_hooks.checkpoint.backend_args == BACKEND_ARGS
    assert isinstance(get_file_backend('work_dirs/x', backend_args=BACKEND_ARGS),
                      AtomicLocalBackend)


@pytest.mark.parametrize('target', ['epoch_2.pth', 'epoch_1.pth'], ids=['new', 'overwrite'])
def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, target):
    good = tmp_path / 'epoch_1.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(good), backend_args=BACKEND_ARGS)
    digest = sha256(good)
    monkeypatch.setattr(atomic_module, 'open', HalfWriteThenFail, raising=False)
    with pytest.raises(OSError, match='No space left'):
        save_checkpoint({'state_dict': {'w': torch.zeros(1000)}}, str(tmp_path / target),
                        backend_args=BACKEND_ARGS)
    assert sha256(good) == digest
    # No tmp, no target; the digest still matches the previous checkpoint.
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth', 'epoch_1.pth.sha256']
    assert (tmp_path / 'epoch_1.pth.sha256').read_text().split()[0] == digest
    assert torch.equal(safe_torch_load(good)['state_dict']['w'], torch.ones(3))


def test_put_text_and_nested_folders(tmp_path):
    backend = AtomicLocalBackend()
    backend.put_text('épоch_1.pth', tmp_path / 'a' / 'b' / 'last')
    assert (tmp_path / 'a' / 'b' / 'last').read_text(encoding='utf-8') == 'épоch_1.pth'
    assert leftovers(tmp_path / 'a' / 'b') == []


def test_stale_tmp_files_of_dead_writers_are_removed(tmp_path):
    target, other = tmp_path / 'epoch_1.pth', tmp_path / 'epoch_2.pth'
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale, alive, of_other = (Path(atomic_module._tmp_prefix(str(path)) + pid) for path, pid in
                              ((target, dead), (target, str(os.getppid())), (other, dead)))
    for path in (stale, alive, of_other):
        path.write_bytes(b'partial')
    AtomicLocalBackend().put(b'complete', target)
    assert target.read_bytes() == b'complete'
    # A running writer's file and another checkpoint's are not this put's business.
    assert leftovers(tmp_path) == sorted([alive.name, of_other.name])


WRITER = textwrap.dedent('''
    import io, sys
    import torch
    from mmkd.checkpoint.atomic_local_backend import AtomicLocalBackend
    buffer = io.BytesIO()
    torch.save({'state_dict': {'w': torch.arange(2**24, dtype=torch.float32)}}, buffer)
    data, backend = buffer.getvalue(), AtomicLocalBackend()
    print('ready', flush=True)
    while True:  # overwrite the earlier checkpoint with a 64 MiB one, again and again
        backend.put(data, sys.argv[1])
''')


def kill_mid_write(path, timeout=120.0):
    """Start WRITER on ``path``, SIGKILL it as soon as a write is under way (a tmp file exists,
    or ``path`` itself changed size, which only an in-place writer does); True if the kill
    landed while the tmp file was still there."""
    size = path.stat().st_size
    proc = subprocess.Popen([sys.executable, '-c', WRITER, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout.readline().strip() == b'ready', proc.stderr.read().decode()
        while time.monotonic() < deadline:
            if leftovers(path.parent) or path.stat().st_size != size:
                break
            time.sleep(0.0005)
        else:
            pytest.fail('the writer never started a write')
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return bool(leftovers(path.parent))


def test_killed_writer_never_corrupts_the_checkpoint(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.ones(4)}}, path)
    for _ in range(5):  # the kill may land just after a write completed: try again
        caught = kill_mid_write(path)
        # Whatever the moment of the kill, the file loads and is one of the two checkpoints.
        weights = safe_torch_load(path)['state_dict']['w']
        assert weights.numel() in (4, 2**24)
        if caught:
            break
    else:
        pytest.fail('no kill landed in the middle of a write in 5 tries')
    # The killed writer's tmp file is cleaned up by the next save of the same path.
    AtomicLocalBackend().put(b'x', path)
    assert leftovers(tmp_path) == []


class CountIters(Hook):

    def __init__(self):
        self.count = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.count += 1


def test_auto_resume_after_a_failed_save_starts_from_the_last_complete_one(tmp_path,
                                                                          monkeypatch):
    data_root = write_msi_tiles(str(tmp_path / 'msi'), 'kaggle', num_patients=4,
                                tiles_per_patient=4, img_size=32)
    cfg = scratch_config('configs/kdml/classifier_r152_1xb16-30e_msi.py')
    set_data_root(cfg, data_root)
    cfg.model.backbone = dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=4)
    cfg.train_dataloader.update(batch_size=8, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.img_size = 32
    cfg.train_cfg.update(max_epochs=2, val_interval=10)
    cfg.work_dir = str(tmp_path / 'work')
    real_open = open

    def open_failing_for_epoch_2(path, mode='r', *args, **kwargs):
        if 'epoch_2.pth' in str(path):
            return HalfWriteThenFail(path, mode)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(atomic_module, 'open', open_failing_for_epoch_2, raising=False)
    with pytest.raises(OSError, match='No space left'):
        Runner.from_cfg(cfg).train()
    work = tmp_path / 'work'
    assert sorted(p.name for p in work.glob('*.pth*')) == ['epoch_1.pth', 'epoch_1.pth.sha256']
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')

    monkeypatch.undo()
    cfg.resume = True  # tools/train.py --resume without a path
    runner = Runner.from_cfg(cfg)
    counter = CountIters()
    runner.register_hook(counter)
    runner.train()
    assert counter.count == len(runner.train_dataloader)  # epoch 2 only: resumed from epoch 1
    assert safe_torch_load(work / 'epoch_2.pth')['meta']['epoch'] == 2
