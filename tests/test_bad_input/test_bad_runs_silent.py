"""Issue 20's training cases that used to go on without a word, or end in an error naming
nothing: --overwrite leaving the old run's checkpoints, load_from / --resume of another
architecture, --resume of a finished run, a batch larger than the data set, a failed
ImageNet download, --launcher pytorch without torchrun."""
import re
import shutil
import urllib.error

import pytest
import torch

from mmkd.utils.download_hint import PretrainedDownloadError


def run_log(work_dir):
    """The text of every log file the runs in ``work_dir`` wrote (what the runner's logger
    printed; it is not the logger current when the test started)."""
    return '\n'.join(p.read_text() for p in sorted(work_dir.glob('*/*.log')))


@pytest.fixture(scope='module')
def _finished(_msi, tmp_path_factory, tiny_cfg, write_cfg, tool):
    """One 2-epoch run for the module (the tests work on copies)."""
    tmp = tmp_path_factory.mktemp('finished')
    config = write_cfg(tiny_cfg(_msi, max_epochs=2), tmp / 'tiny.py')
    tool('train', config, '--work-dir', tmp / 'work')
    return config, tmp / 'work'


@pytest.fixture
def config(_finished):
    return _finished[0]


@pytest.fixture
def finished_run(_finished, tmp_path):
    """A copy of the module's finished run (``last_checkpoint`` naming the copy's file)."""
    work = tmp_path / 'work'
    shutil.copytree(_finished[1], work)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    return work


def test_overwrite_removes_the_old_runs_checkpoints(config, finished_run, tool, mmkd_log):
    # A shorter run with --overwrite: epoch_2.pth of the old run used to stay beside the new
    # epoch_1.pth (and tools/test.py or --resume picked it).
    tool('train', config, '--work-dir', finished_run, '--overwrite',
         '--cfg-options', 'train_cfg.max_epochs=1')
    assert sorted(p.name for p in finished_run.glob('*.pth*')) == [
        'epoch_1.pth', 'epoch_1.pth.sha256']
    assert (finished_run / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    assert any(m.startswith(f"--overwrite: removed the old run's checkpoints from "
                            f'{finished_run}: epoch_1.pth, epoch_2.pth, last_checkpoint')
               for m in mmkd_log)


def test_load_from_another_architecture_is_refused(msi_root, finished_run, tmp_path, tool,
                                                   tiny_cfg, write_cfg):
    # A teacher of 3 stages instead of 2: mmengine's strict=False load used to train on with
    # the third stage random, exit 0.
    other = write_cfg(tiny_cfg(msi_root, max_epochs=1, teacher=dict(num_stages=3)),
                      tmp_path / 'deeper.py')
    ckpt = finished_run / 'epoch_2.pth'
    with pytest.raises(ValueError) as info:
        tool('train', other, '--work-dir', tmp_path / 'new', '--cfg-options',
             f'load_from={ckpt}')
    message = str(info.value)
    assert message.startswith(f'load_from {ckpt}: the checkpoint does not match the model of '
                              f'config {other}: ')
    assert "keys of the model are missing from it, e.g. ['teacher.backbone.layer3." in message
    assert not list((tmp_path / 'new').glob('*.pth'))


def test_load_from_with_other_shapes_only_warns(msi_root, finished_run, tmp_path, tool,
                                                tiny_cfg, write_cfg):
    # Same keys, a wider student: the fine-tuning case (a head to other classes) loads the
    # rest and names what it skipped.
    other = write_cfg(tiny_cfg(msi_root, max_epochs=1, students=(8, 4)), tmp_path / 'wide.py')
    tool('train', other, '--work-dir', tmp_path / 'new', '--cfg-options',
         f'load_from={finished_run / "epoch_2.pth"}')
    assert re.search(r'WARNING - load_from .*epoch_2\.pth: \d+ have another shape, e.g. '
                     r"\['students\.0\..*those weights are not loaded", run_log(tmp_path / 'new'))


def test_resume_with_another_architecture_is_named(msi_root, finished_run, tool, tiny_cfg,
                                                   write_cfg, tmp_path):
    # Used to end in torch's "loaded state dict contains a parameter group that doesn't
    # match the size of optimizer's group", naming no file.
    other = write_cfg(tiny_cfg(msi_root, max_epochs=3, teacher=dict(num_stages=3)),
                      tmp_path / 'deeper.py')
    with pytest.raises(ValueError, match=re.escape(
            f'--resume {finished_run}/epoch_2.pth: the checkpoint does not match the model '
            f'of config {other}')):
        tool('train', other, '--work-dir', finished_run, '--resume')


def test_resume_of_a_finished_run_says_so(config, finished_run, tool):
    before = sorted(p.name for p in finished_run.glob('*.pth'))
    tool('train', config, '--work-dir', finished_run, '--resume')
    assert sorted(p.name for p in finished_run.glob('*.pth')) == before
    assert (f'--resume {finished_run}/epoch_2.pth: the run is already finished (epoch 2 of '
            'train_cfg.max_epochs = 2): nothing is trained.') in run_log(finished_run)


def test_a_batch_larger_than_the_dataset_warns(msi_root, tmp_path, tool, tiny_cfg, write_cfg):
    cfg = tiny_cfg(msi_root, max_epochs=1)
    cfg.train_dataloader.batch_size = 500
    tool('train', write_cfg(cfg, tmp_path / 'big.py'), '--work-dir', tmp_path / 'w')
    assert re.search(r'WARNING - train_dataloader\.batch_size = 500 is larger than the train '
                     r'set \(MSITileDataset, \d+ samples\): each epoch is one batch',
                     run_log(tmp_path / 'w'))


def test_a_failed_imagenet_download_names_the_file(msi_root, tmp_path, tool, tiny_cfg,
                                                   write_cfg, monkeypatch):
    # The walk-through's command without --from-scratch on a machine without internet used to
    # end in a 40-line URLError that never said weights were being fetched.
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))

    def offline(*args, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(torch.hub, 'urlopen', offline)
    cfg = tiny_cfg(msi_root, max_epochs=1)
    cfg.model.teacher.backbone = dict(type='TorchvisionBackbone', arch='resnet18',
                                      pretrained=True)
    path = write_cfg(cfg, tmp_path / 'imagenet.py')
    with pytest.raises(PretrainedDownloadError) as info:
        tool('train', path, '--work-dir', tmp_path / 'w')
    message = str(info.value)
    assert message.startswith(f'could not download the ImageNet weights config {path} starts '
                              'from (<urlopen error [Errno -3]')
    assert f'{tmp_path}/torch/hub/checkpoints/resnet18-f37072fd.pth' in message
    assert f'python tools/pretrained_weights.py {path}' in message
    assert message.endswith('or train from random initialisation with --from-scratch.')


def test_launcher_pytorch_without_torchrun_says_how(monkeypatch):
    from mmengine.config import Config

    from mmkd.utils import setup_launcher
    for name in ('RANK', 'WORLD_SIZE'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match=re.escape(
            '--launcher pytorch: RANK / WORLD_SIZE are not set, so this process was not '
            'started by torchrun. Use tools/dist_train.sh CONFIG NUM_PROCS')):
        setup_launcher(Config(dict(model=dict())), 'pytorch')
