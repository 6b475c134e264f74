"""A local file backend whose writes are atomic: mmkd's checkpoints are saved through it.

mmengine's ``save_checkpoint`` serialises the checkpoint to memory and hands the bytes to the
file backend's ``put``; ``LocalBackend.put`` opens the final path with ``'wb'``, so a process
killed (or a disk that fills up) while writing leaves a truncated file under the final name,
and overwriting a checkpoint in place destroys the previous one first. Here the bytes go to a
temporary file next to the target, are flushed to disk, and only then renamed over the final
name (``os.replace`` is atomic on POSIX and Windows): the final path holds either the complete
old file or the complete new one. ``CheckpointHook`` writes ``last_checkpoint`` only after
``put`` returns, so an auto ``--resume`` never points at a half-written checkpoint.

Every ``put`` also writes the SHA-256 digest of the bytes beside them, ``<path>.sha256``
(``digest.py``), which mmkd checks before loading; ``remove`` removes both.

Use with ``default_hooks.checkpoint.backend_args=dict(backend='atomic_local')`` (mmkd's
``configs/_base_/default_runtime.py`` does); ``import mmkd`` registers the name.
"""
import contextlib
import glob
import os
import os.path as osp
import socket
from pathlib import Path
from typing import Union

import mmengine
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio.backends import backends

from .digest import digest_line, digest_path, remove_digest

BACKEND_NAME = 'atomic_local'


def _tmp_prefix(filepath: str) -> str:
    # The host is part of the name, so that the stale-file clean-up below only ever judges
    # the process ids of this machine (work dirs may live on a shared file system).
    return f'{filepath}.tmp-{socket.gethostname()}-'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or cannot be told: keep its file
    return True


def _remove_stale_tmp_files(filepath: str) -> None:
    """Remove temporary files that killed writers of ``filepath`` on this host left behind
    (a checkpoint-sized file each), keeping those of processes still running."""
    prefix = _tmp_prefix(filepath)
    for path in glob.glob(glob.escape(prefix) + '*'):
        pid = path[len(prefix):]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.remove(path)


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable across a power cut; directories cannot be opened for
    # fsync on Windows, where the rename is all there is.
    if os.name != 'posix':
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put``/``put_text`` write ``<path>.tmp-<host>-<pid>``, flush
    and fsync it, then ``os.replace`` it over ``<path>``. ``put`` (checkpoints) also writes
    the digest ``<path>.sha256``; ``remove`` removes it with the file. Reading and listing are
    ``LocalBackend``'s."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        filepath = str(filepath)
        # The old digest goes before the new bytes are renamed in: a kill in between leaves
        # a checkpoint without digest, never one with the digest of other bytes.
        self._write_atomic(obj, filepath, before_rename=lambda: remove_digest(filepath))
        self._write_atomic(digest_line(obj, filepath).encode(), digest_path(filepath))

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        self._write_atomic(obj.encode(encoding), str(filepath))

    def remove(self, filepath: Union[str, Path]) -> None:
        super().remove(filepath)
        remove_digest(str(filepath))

    def _write_atomic(self, obj: bytes, filepath: str, before_rename=None) -> None:
        folder = osp.dirname(filepath)
        mmengine.mkdir_or_exist(folder)
        _remove_stale_tmp_files(filepath)
        tmp = f'{_tmp_prefix(filepath)}{os.getpid()}'
        try:
            with open(tmp, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            if before_rename is not None:
                before_rename()
            os.replace(tmp, filepath)
        except BaseException:
            # A failed write (disk full, an exception) leaves nothing behind; only a killed
            # process leaves its tmp file, which the next put of this path removes.
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        _fsync_dir(folder or '.')


def register_atomic_local_backend() -> None:
    """Register :class:`AtomicLocalBackend` as mmengine file backend ``'atomic_local'``
    (once; importing mmkd again is a no-op)."""
    if BACKEND_NAME not in backends:
        register_backend(BACKEND_NAME, AtomicLocalBackend)
