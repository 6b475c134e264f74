"""A failed download of a config's ImageNet weights, explained: which files, where they go,
and the two ways on (``tools/pretrained_weights.py``, ``--from-scratch``), instead of a long
``URLError`` traceback that does not say weights were being fetched."""
import contextlib
import urllib.error

from mmengine.config import Config

from .pretrained import pretrained_files


class PretrainedDownloadError(RuntimeError):
    """The ImageNet weights a config starts from could not be downloaded."""


def download_failure_message(cfg: Config, config: str, error: Exception) -> str:
    """What the download failure of ``config``'s initial weights means, naming the files."""
    try:
        rows = [r for r in pretrained_files(cfg) if r['present'] == 'no']
    except Exception:  # listing must not hide the original error
        rows = []
    files = '; '.join(f"{r['path']} <- {r['url']} ({r['key']})" for r in rows[:4])
    files = files or 'the files tools/pretrained_weights.py lists'
    return (f'could not download the ImageNet weights config {config} starts from ({error}). '
            f'Missing: {files}. On a machine without internet, copy them there (python '
            f'tools/pretrained_weights.py {config} lists every file and its URL), or train '
            'from random initialisation with --from-scratch.')


@contextlib.contextmanager
def explain_download_errors(cfg: Config, config: str):
    """Re-raise a failed download (``URLError``, an HTTP error) inside the block as
    :class:`PretrainedDownloadError` naming the weight files; other errors pass."""
    try:
        yield
    except urllib.error.URLError as e:
        raise PretrainedDownloadError(download_failure_message(cfg, config, e)) from e
