"""What tools/train.py (and tools/test.py) check in the work dir before the runner writes
anything there."""
import glob
import logging
import os
import os.path as osp
import time
from typing import List, Optional

from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint


def checkpoints_in(work_dir: str) -> List[str]:
    """Names of the checkpoints (``*.pth``) and of ``last_checkpoint`` in ``work_dir``."""
    names = sorted(osp.basename(p) for p in glob.glob(osp.join(glob.escape(work_dir), '*.pth')))
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        names.append('last_checkpoint')
    return names


def check_work_dir(work_dir: str, resume: Optional[str], overwrite: bool) -> None:
    """Refuse to start a new run (no ``--resume``, no ``--overwrite``) in a work dir that
    holds checkpoints: the new run would overwrite ``epoch_*.pth`` and ``last_checkpoint``.

    Raises:
        FileExistsError: Naming the folder, its checkpoints and the three ways on.
    """
    found = checkpoints_in(work_dir) if osp.isdir(work_dir) else []
    if resume is not None or not found:
        return
    if overwrite:
        remove_checkpoints(work_dir, found)
        return
    shown = ', '.join(found[:5]) + (f' and {len(found) - 5} more' if len(found) > 5 else '')
    raise FileExistsError(
        f'work dir {work_dir} already holds checkpoints ({shown}): training there again would '
        'overwrite them. Continue that run with --resume, train into a new --work-dir, or '
        'pass --overwrite to replace them.')


def remove_checkpoints(work_dir: str, names: List[str]) -> None:
    """``--overwrite``: remove the old run's checkpoints (and their digests) before the new
    run starts, so that none of them is left beside the new run's (a shorter run would leave
    ``epoch_3.pth`` beside its ``epoch_1.pth``, and a later ``--resume`` or test would pick
    the old one). Its log folders stay."""
    for name in names:
        path = osp.join(work_dir, name)
        for file in (path, f'{path}.sha256'):
            if osp.isfile(file):
                os.remove(file)
    print_log(f'--overwrite: removed the old run\'s checkpoints from {work_dir}: '
              f'{", ".join(names)} (its log folders stay)', logger='current',
              level=logging.WARNING)


def resume_checkpoint(work_dir: str) -> str:
    """The checkpoint ``--resume`` (no path) continues from: the one ``last_checkpoint`` in
    ``work_dir`` names, as mmengine's auto-resume reads it.

    Raises:
        FileNotFoundError: There is none; mmengine would train from scratch instead.
    """
    found = find_latest_checkpoint(work_dir) if osp.isdir(work_dir) else None
    others = checkpoints_in(work_dir) if osp.isdir(work_dir) else []
    if found is None and others:
        raise FileNotFoundError(
            f'--resume: {work_dir} has no last_checkpoint file, which names the checkpoint to '
            f'resume from; it holds {", ".join(others)}: pass the one to continue from '
            '(--resume PATH)')
    if found is None:
        raise FileNotFoundError(
            f'--resume: no checkpoint to resume from in {work_dir} (no last_checkpoint file '
            'and no *.pth there): check --work-dir, pass the checkpoint itself (--resume '
            'PATH), or leave out --resume to start a new run')
    return found


def wait_for_new_log_folder(work_dir: str) -> None:
    """Wait (at most a second) until the runner's log folder name, the local time
    ``%Y%m%d_%H%M%S`` mmengine's Runner gives it, is not one that already exists in
    ``work_dir``: a second run started within the same second as the last one would write its
    logs into that run's folder and replace its ``.log`` file.
    """
    while osp.isdir(osp.join(work_dir, time.strftime('%Y%m%d_%H%M%S', time.localtime()))):
        time.sleep(0.05)
