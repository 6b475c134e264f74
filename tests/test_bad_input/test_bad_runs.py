"""tools/train.py in a work dir that holds checkpoints, and --resume where there are none:
refused before anything is written, naming the folder."""
import os
import re

import pytest


def snapshot(folder):
    """Every file under ``folder`` with its size and modification time."""
    return sorted((osp_rel, st.st_size, st.st_mtime_ns) for osp_rel, st in (
        (os.path.relpath(os.path.join(d, f), folder), os.stat(os.path.join(d, f)))
        for d, _, files in os.walk(folder) for f in files))


@pytest.fixture
def config(msi_root, tmp_path, tiny_cfg, write_cfg):
    return write_cfg(tiny_cfg(msi_root, max_epochs=1), tmp_path / 'tiny.py')


@pytest.fixture
def finished_run(config, tmp_path, tool):
    work = tmp_path / 'work'
    tool('train', config, '--work-dir', work)
    return work


def test_training_again_in_a_work_dir_with_checkpoints_is_refused(config, finished_run, tool):
    before = snapshot(finished_run)
    with pytest.raises(FileExistsError) as info:
        tool('train', config, '--work-dir', finished_run)
    assert str(info.value) == (
        f'work dir {finished_run} already holds checkpoints (epoch_1.pth, last_checkpoint): '
        'training there again would overwrite them. Continue that run with --resume, train '
        'into a new --work-dir, or pass --overwrite to replace them.')
    assert snapshot(finished_run) == before  # no log folder, no config dump, nothing


def test_overwrite_trains_again_in_the_same_work_dir(config, finished_run, tool):
    old = (finished_run / 'epoch_1.pth').stat().st_mtime_ns
    tool('train', config, '--work-dir', finished_run, '--overwrite')
    assert (finished_run / 'epoch_1.pth').stat().st_mtime_ns != old
    logs = sorted(p for p in finished_run.iterdir() if p.is_dir())
    assert len(logs) == 2  # two runs' log folders, even when both start in the same second
    for log in logs:
        assert 'Epoch(train)' in (log / f'{log.name}.log').read_text()


def test_a_run_never_starts_in_an_existing_log_folder(tmp_path):
    import time

    from mmkd.utils.work_dir import wait_for_new_log_folder
    now = time.strftime('%Y%m%d_%H%M%S', time.localtime())
    (tmp_path / now).mkdir()
    start = time.monotonic()
    wait_for_new_log_folder(str(tmp_path))
    assert time.strftime('%Y%m%d_%H%M%S', time.localtime()) != now
    assert time.monotonic() - start < 1.5
    wait_for_new_log_folder(str(tmp_path / 'not-there-yet'))  # no folder: returns at once


@pytest.mark.parametrize('exists', [True, False], ids=['empty-dir', 'mistyped-dir'])
def test_resume_without_a_checkpoint_names_the_folder(config, tmp_path, tool, exists):
    work = tmp_path / 'wrok'
    if exists:
        work.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(
            f'--resume: no checkpoint to resume from in {work} (no last_checkpoint file and no '
            '*.pth there): check --work-dir, pass the checkpoint itself (--resume PATH), or '
            'leave out --resume to start a new run')):
        tool('train', config, '--work-dir', work, '--resume')
    assert os.listdir(work) == [] if exists else not work.exists()


def test_resume_continues_the_run(config, finished_run, tool, tiny_cfg, msi_root, write_cfg):
    longer = write_cfg(tiny_cfg(msi_root, max_epochs=2), finished_run.parent / 'longer.py')
    tool('train', longer, '--work-dir', finished_run, '--resume')
    assert (finished_run / 'last_checkpoint').read_text().endswith('epoch_2.pth')


