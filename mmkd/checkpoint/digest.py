"""A SHA-256 digest beside every checkpoint mmkd writes, checked before every load.

``torch.load`` does not check the CRCs of a checkpoint's zip archive: a file with a few KiB of
flipped bytes (a bad sector, a broken copy) loads, and its weights turn into NaN metrics or a
NaN loss much later. So the atomic backend (``atomic_local_backend.py``) writes, with every
checkpoint ``epoch_3.pth``, a sidecar ``epoch_3.pth.sha256`` in ``sha256sum``'s format
(``<hex digest>  epoch_3.pth``; ``sha256sum -c epoch_3.pth.sha256`` checks it by hand), and
every mmkd load of a local checkpoint (train's ``load_from``, ``--resume``, ``tools/test.py``,
``tools/export_students.py``, offline teachers) first compares the file with it.

Why a sidecar and not a digest inside the checkpoint (``meta``): a digest stored in the file
cannot cover the file itself, only what is unpickled from it, and reading that already means
unpickling the damaged bytes. The sidecar covers every byte and is checked before
``torch.load``.

Write order (``AtomicLocalBackend.put``): the new checkpoint is written to a temporary file,
then the old sidecar is removed, the checkpoint is renamed into place, and its sidecar is
written (atomically too). A process killed in between leaves a checkpoint without a digest,
which loads with a note, never a digest of other bytes beside it.

A checkpoint without a sidecar (older, foreign, copied without it) is checked against the
CRC-32s torch's zip writer stores for every archive member; a sidecar that holds no digest is
refused as malformed, not reported as a damaged checkpoint.
"""
import glob
import hashlib
import logging
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional, Set, Tuple

from mmengine.logging import print_log

DIGEST_SUFFIX = '.sha256'
_ZIP_MAGIC, _PICKLE_MAGIC = b'PK\x03\x04', b'\x80'
_CHUNK = 1 << 20
_noted: Set[str] = set()


class CheckpointDigestError(RuntimeError):
    """A checkpoint's bytes differ from the digest written with it."""


class MalformedDigestError(CheckpointDigestError):
    """A checkpoint's sidecar holds no digest (it says nothing about the checkpoint)."""


def digest_path(path: str) -> str:
    """The sidecar of checkpoint ``path``: ``<path>.sha256``."""
    return f'{path}{DIGEST_SUFFIX}'


def digest_line(data: bytes, path: str) -> str:
    """The sidecar text for checkpoint bytes ``data`` saved as ``path``."""
    return f'{hashlib.sha256(data).hexdigest()}  {osp.basename(path)}\n'


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def read_digest(path: str) -> Optional[str]:
    """The hex digest in ``path``'s sidecar; None if there is none, an empty string if the
    sidecar holds no digest (malformed)."""
    try:
        with open(digest_path(path), encoding='utf-8', errors='replace') as f:
            text = f.read()
    except FileNotFoundError:
        return None
    found = re.match(r'\s*([0-9a-fA-F]{64})\b', text)
    return found.group(1).lower() if found else ''


def digest_matches(path: str) -> Optional[bool]:
    """True if ``path`` matches its sidecar, False if not, None if it has no sidecar."""
    expected = read_digest(path)
    if expected is None:
        return None
    return file_sha256(path) == expected


def _checkpoint_order(path: str) -> Tuple[float, int, str]:
    numbers = re.findall(r'\d+', osp.basename(path))
    return osp.getmtime(path), int(numbers[-1]) if numbers else -1, path


def intact_checkpoints(folder: str, exclude: str) -> List[str]:
    """Names of the other ``*.pth`` files in ``folder`` that match their digest, newest
    first (files without a digest cannot be vouched for and are left out)."""
    paths = [p for p in glob.glob(osp.join(glob.escape(folder), '*.pth'))
             if osp.abspath(p) != osp.abspath(exclude)]
    return [osp.basename(p) for p in sorted(paths, key=_checkpoint_order, reverse=True)
            if digest_matches(p)]


def _not_loaded(path: str, why: str) -> RuntimeError:
    return RuntimeError(f'checkpoint {path} was not loaded: it is truncated, corrupt or not a '
                        f'PyTorch checkpoint ({why}).')


def check_format(path: str) -> None:
    """A PyTorch checkpoint is a zip archive (``torch.save``'s format since 1.6) or a pickle
    (the legacy format); anything else (a text file, an image, an empty file) is named here,
    not left to the unpickler's bare ``IndexError`` / ``KeyError``.

    Raises:
        RuntimeError: Naming the file and what it starts with.
    """
    with open(path, 'rb') as f:
        head = f.read(16)
    if head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return
    why = 'the file is empty' if not head else f'it starts with {head!r}'
    raise _not_loaded(path, f'{why}, neither a zip archive nor a pickle')


def check_zip_crcs(path: str) -> None:
    """The check a checkpoint without a digest gets: every member of its zip archive against
    the CRC-32 stored with it (torch writes them, ``torch.load`` does not read them). Flipped
    bytes in the tensors or the pickle are caught; a legacy (pickle) checkpoint has none.

    Raises:
        RuntimeError: Naming the file and the damaged member.
    """
    with open(path, 'rb') as f:
        if not f.read(4).startswith(_ZIP_MAGIC):
            return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise _not_loaded(path, f'its zip archive cannot be read: {e}') from e
    if bad is not None:
        raise _not_loaded(path, f'member {bad} of its zip archive differs from the CRC-32 '
                          'stored with it: its bytes changed after it was written')


def verify_checkpoint(filename: str) -> None:
    """Check a local checkpoint before it is loaded: its format (:func:`check_format`), then
    its bytes against its sidecar, or, without a sidecar, against its zip CRC-32s
    (:func:`check_zip_crcs`).

    Raises:
        CheckpointDigestError: The file differs from its digest. The message names the file
            and the checkpoints of the same folder that still match theirs.
        MalformedDigestError: The sidecar holds no digest.
        RuntimeError: Not a checkpoint, or its zip CRCs fail (no sidecar).
    """
    path = osp.expanduser(str(filename))
    if not osp.isfile(path):
        return  # not a local file (a URL, another backend): the loader says what it is
    check_format(path)
    expected = read_digest(path)
    if expected == '':
        raise MalformedDigestError(
            f'{digest_path(path)} is not a digest: it should read "<64 hex digits>  '
            f'{osp.basename(path)}" (sha256sum\'s format). Checkpoint {path} was not checked '
            f'and not loaded. If you trust the checkpoint, rewrite the digest (cd '
            f'{osp.dirname(path) or "."} && sha256sum {osp.basename(path)} > '
            f'{osp.basename(path)}{DIGEST_SUFFIX}) or delete it (the checkpoint is then '
            'checked against its zip CRC-32s only).')
    matches = None if expected is None else file_sha256(path) == expected
    if matches is None:
        check_zip_crcs(path)
        if path not in _noted:
            _noted.add(path)
            print_log(f'checkpoint {path} has no digest ({digest_path(path)} is missing: an '
                      'older or a foreign checkpoint), so it is checked only against the '
                      'CRC-32s of its zip archive', logger='current', level=logging.INFO)
        return
    if matches:
        return
    folder = osp.dirname(path) or '.'
    intact = intact_checkpoints(folder, path)
    if intact:
        first = osp.join(folder, intact[0])
        advice = (f'Intact checkpoints in {folder}, newest first: {", ".join(intact)}; use one '
                  f'of them (e.g. --resume {first} or tools/test.py CONFIG {first}).')
    else:
        advice = (f'No other checkpoint in {folder} matches its digest: restore '
                  f'{osp.basename(path)} from a copy, or train again.')
    raise CheckpointDigestError(
        f'checkpoint {path} is damaged: its SHA-256 differs from the digest saved with it in '
        f'{digest_path(path)}, so its bytes changed after it was written (disk or copy '
        f'error). It was not loaded. {advice}')


def remove_digest(path: str) -> None:
    try:
        os.remove(digest_path(str(path)))
    except FileNotFoundError:
        pass
