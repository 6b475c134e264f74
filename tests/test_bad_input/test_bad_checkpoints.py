"""Checkpoints of another model, with flipped bytes, truncated, refused or without a digest:
every tool stops with an error naming the file (and says which checkpoint is intact), or
loads with a note."""
import hashlib
import os
import re
import shutil

import pytest
import torch
from mmengine.runner import save_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint

from mmkd.checkpoint.digest import CheckpointDigestError
from mmkd.registry import MODELS
from mmkd.testing import write_msi_tiles
from mmkd.utils import AtomicLocalBackend, RefusedCheckpointError, export_students

BACKEND_ARGS = dict(backend='atomic_local')


def sha256(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def flip_bytes(path, count=4096):
    """Invert ``count`` bytes in the middle of the file (a bad sector, a broken copy)."""
    raw = bytearray(open(path, 'rb').read())
    start = len(raw) // 2 - count // 2
    raw[start:start + count] = bytes(b ^ 0xFF for b in raw[start:start + count])
    with open(path, 'wb') as f:
        f.write(raw)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_cfg, write_cfg, tool):
    """A real 2-epoch run of tools/train.py: work dir with epoch_1.pth and epoch_2.pth."""
    root = tmp_path_factory.mktemp('run')
    data = write_msi_tiles(str(root / 'msi'), 'kaggle', num_patients=4, tiles_per_patient=4,
                           img_size=32)
    config = write_cfg(tiny_cfg(data), root / 'tiny.py')
    tool('train', config, '--work-dir', root / 'work')
    return dict(config=config, work=root / 'work', data=data)


@pytest.fixture
def run_copy(trained, tmp_path):
    """A writable copy of the trained work dir."""
    work = tmp_path / 'work'
    shutil.copytree(trained['work'], work)
    # last_checkpoint names the original folder: point it at the copy.
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    return dict(trained, work=work)


# ---------------------------------------------------------------- digests
def test_every_saved_checkpoint_has_a_digest(trained):
    work = trained['work']
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        # sha256sum's format: `sha256sum -c epoch_1.pth.sha256` checks it by hand.
        assert (work / f'{name}.sha256').read_text() == f'{sha256(work / name)}  {name}\n'
    assert not (work / 'last_checkpoint.sha256').exists()  # text, not a checkpoint


DAMAGED = ('checkpoint {ckpt} is damaged: its SHA-256 differs from the digest saved with it in '
           '{ckpt}.sha256, so its bytes changed after it was written (disk or copy error). It '
           'was not loaded. Intact checkpoints in {work}, newest first: epoch_1.pth; use one '
           'of them (e.g. --resume {work}/epoch_1.pth or tools/test.py CONFIG '
           '{work}/epoch_1.pth).')


@pytest.mark.parametrize('entry', ['test', 'resume', 'load_from', 'export'])
def test_flipped_bytes_are_named_with_the_intact_checkpoint(run_copy, tool, tmp_path, capsys,
                                                           entry):
    work, config = run_copy['work'], run_copy['config']
    flip_bytes(work / 'epoch_2.pth')
    ckpt = work / 'epoch_2.pth'
    commands = dict(
        test=('test', config, ckpt, '--work-dir', tmp_path / 'eval'),
        resume=('train', config, '--work-dir', work, '--resume'),
        load_from=('train', config, '--work-dir', tmp_path / 'new', '--cfg-options',
                   f'load_from={ckpt}'),
        export=('export_students', config, ckpt, '--out-dir', tmp_path / 'export'))
    with pytest.raises(CheckpointDigestError) as info:
        tool(*commands[entry])
    assert str(info.value) == DAMAGED.format(ckpt=ckpt, work=work)
    assert 'top1_acc' not in capsys.readouterr().out  # no (NaN) metrics were printed


def test_intact_checkpoints_still_evaluate(run_copy, tool, tmp_path, capsys):
    tool('test', run_copy['config'], run_copy['work'] / 'epoch_1.pth', '--work-dir',
         tmp_path / 'eval')
    table = capsys.readouterr().out
    assert 'top1_acc |' in table and 'nan' not in table


def test_no_intact_checkpoint_left_is_said(run_copy):
    work = run_copy['work']
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        flip_bytes(work / name)
    with pytest.raises(CheckpointDigestError, match=re.escape(
            f'It was not loaded. No other checkpoint in {work} matches its digest: restore '
            f'epoch_2.pth from a copy, or train again.')):
        _load_checkpoint(str(work / 'epoch_2.pth'))


def test_a_checkpoint_without_digest_loads_with_one_note(run_copy, mmkd_log):
    work = run_copy['work']
    os.remove(work / 'epoch_2.pth.sha256')
    for _ in range(2):
        state = _load_checkpoint(str(work / 'epoch_2.pth'), map_location='cpu')
    assert 'state_dict' in state
    notes = [m for m in mmkd_log if 'has no digest' in m]
    assert notes == [f'checkpoint {work}/epoch_2.pth has no digest ({work}/epoch_2.pth.sha256 '
                     'is missing: an older or a foreign checkpoint), so it is checked only '
                     'against the CRC-32s of its zip archive']


def test_a_failed_digest_write_leaves_no_stale_digest(tmp_path, monkeypatch):
    # Overwriting epoch_1.pth: the old digest goes before the new file is renamed in, so a
    # crash before the new digest is written leaves a checkpoint without one, never a
    # digest of the old bytes beside the new file.
    path = tmp_path / 'epoch_1.pth'
    backend = AtomicLocalBackend()
    backend.put(b'old checkpoint', path)
    original = AtomicLocalBackend._write_atomic

    def fail_on_digest(self, data, filepath, **kwargs):
        if str(filepath).endswith('.sha256'):
            raise OSError('killed')
        original(self, data, filepath, **kwargs)

    monkeypatch.setattr(AtomicLocalBackend, '_write_atomic', fail_on_digest)
    with pytest.raises(OSError, match='killed'):
        backend.put(b'new checkpoint', path)
    assert path.read_bytes() == b'new checkpoint'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']


def test_removing_a_checkpoint_removes_its_digest(tmp_path):
    # CheckpointHook(max_keep_ckpts) removes old checkpoints through the backend.
    backend = AtomicLocalBackend()
    backend.put(b'checkpoint', tmp_path / 'epoch_1.pth')
    backend.remove(tmp_path / 'epoch_1.pth')
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- another architecture
def test_test_tool_refuses_a_checkpoint_of_another_architecture(msi_root, tmp_path, tool,
                                                               tiny_cfg, write_cfg):
    # Saved from a model with 3 students of other widths; evaluated with a config whose
    # teacher has 3 stages: keys missing, unexpected and of other shapes.
    other = MODELS.build(tiny_cfg(msi_root, students=(8, 4, 4)).model)
    ckpt = str(tmp_path / 'other.pth')
    save_checkpoint({'state_dict': other.state_dict(), 'meta': {}}, ckpt,
                    backend_args=BACKEND_ARGS)
    config = write_cfg(tiny_cfg(msi_root, teacher=dict(num_stages=3, base_channels=8)),
                       tmp_path / 'cfg.py')
    with pytest.raises(ValueError) as info:
        tool('test', config, ckpt, '--work-dir', tmp_path / 'eval')
    # 30 = layer3 of the teacher (2 blocks: 18 + 12 entries), 62 = all of student 2,
    # 52 = every conv / BN tensor of student 0 and both heads' weights that read the width.
    assert str(info.value) == (
        f'checkpoint {ckpt} does not match the model of config {config}: 30 keys of the '
        "model are missing from it, e.g. ['teacher.backbone.layer3.0.bn1.bias', "
        "'teacher.backbone.layer3.0.bn1.num_batches_tracked', "
        "'teacher.backbone.layer3.0.bn1.running_mean', "
        "'teacher.backbone.layer3.0.bn1.running_var', "
        "'teacher.backbone.layer3.0.bn1.weight', ...]; 62 keys in it are not in the model, "
        "e.g. ['students.2.backbone.bn1.bias', 'students.2.backbone.bn1.num_batches_tracked', "
        "'students.2.backbone.bn1.running_mean', 'students.2.backbone.bn1.running_var', "
        "'students.2.backbone.bn1.weight', ...]; 52 have another shape, e.g. "
        "['students.0.backbone.bn1.bias: checkpoint (8,) vs model (4,)', "
        "'students.0.backbone.bn1.running_mean: checkpoint (8,) vs model (4,)', "
        "'students.0.backbone.bn1.running_var: checkpoint (8,) vs model (4,)', "
        "'students.0.backbone.bn1.weight: checkpoint (8,) vs model (4,)', "
        "'students.0.backbone.conv1.weight: checkpoint (8, 3, 3, 3) vs model (4, 3, 3, 3)', "
        "...]. Evaluate it with the config it was trained with.")


# ---------------------------------------------------------------- export's loader
def test_export_names_a_truncated_checkpoint(run_copy, tmp_path):
    ckpt = run_copy['work'] / 'epoch_1.pth'
    os.remove(f'{ckpt}.sha256')  # a foreign file: no digest to catch it first
    raw = ckpt.read_bytes()
    ckpt.write_bytes(raw[:len(raw) // 2])
    from mmengine.config import Config
    with pytest.raises(RuntimeError, match=re.escape(f'checkpoint {ckpt} was not loaded: it is '
                                                     'truncated, corrupt or not a PyTorch')):
        export_students(Config.fromfile(run_copy['config']), str(ckpt), str(tmp_path / 'out'))


class Payload:
    """Stands for any object a checkpoint could pickle beside its tensors."""


def test_export_refuses_a_pickled_object(run_copy, tmp_path):
    from mmengine.config import Config
    ckpt = tmp_path / 'payload.pth'
    state = torch.load(run_copy['work'] / 'epoch_1.pth', weights_only=False)
    state['meta']['payload'] = Payload()
    torch.save(state, ckpt)
    with pytest.raises(RefusedCheckpointError) as info:
        export_students(Config.fromfile(run_copy['config']), str(ckpt), str(tmp_path / 'out'))
    message = str(info.value)
    assert message.startswith(f'checkpoint {ckpt} was not loaded: it holds a pickled object '
                              'outside the allow-list (test_bad_checkpoints.Payload)')
    assert 'weights_only=False' not in message


def test_exported_students_have_digests(run_copy, tmp_path):
    from mmengine.config import Config
    written = export_students(Config.fromfile(run_copy['config']),
                              str(run_copy['work'] / 'epoch_1.pth'), str(tmp_path / 'out'))
    for _, ckpt in written:
        name = os.path.basename(ckpt)
        assert open(f'{ckpt}.sha256').read() == f'{sha256(ckpt)}  {name}\n'
