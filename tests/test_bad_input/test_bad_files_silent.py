"""Issue 20's bad files and test flags: a text file as checkpoint, a malformed digest, flipped
bytes without a digest, the same image id twice in kavsir_bboxes.json, IDX images that are not
28x28, output paths that cannot be written, --show-dir on a classifier. Each ends in an error
naming the file or option before any work."""
import argparse
import json
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint

import mmkd  # noqa: F401 (mmkd's checked checkpoint loader)
from mmkd.checkpoint.digest import MalformedDigestError
from mmkd.datasets import FashionMNISTDataset, KvasirSegDataset
from mmkd.testing.idx_format import write_fashion_mnist, write_idx
from mmkd.utils.test_flags import apply_test_flags


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.arange(4096.)}, 'meta': {}}, path)
    return path


# ---------------------------------------------------------------- checkpoints
def test_a_text_file_as_checkpoint_is_named(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('hello world\n')  # used to end in a bare IndexError / KeyError
    with pytest.raises(RuntimeError, match=re.escape(
            f"checkpoint {path} was not loaded: it is truncated, corrupt or not a PyTorch "
            "checkpoint (it starts with b'hello world\\n', neither a zip archive nor a "
            "pickle).")):
        _load_checkpoint(str(path))


def test_an_empty_file_as_checkpoint_is_named(tmp_path):
    path = tmp_path / 'empty.pth'
    path.write_bytes(b'')
    with pytest.raises(RuntimeError, match='the file is empty, neither a zip archive'):
        _load_checkpoint(str(path))


def test_a_malformed_digest_is_not_called_a_damaged_checkpoint(checkpoint):
    # Used to say "checkpoint … is damaged … restore it from a copy": the sidecar was wrong.
    sidecar = f'{checkpoint}.sha256'
    with open(sidecar, 'w') as f:
        f.write('not a digest\n')
    with pytest.raises(MalformedDigestError) as info:
        _load_checkpoint(str(checkpoint))
    message = str(info.value)
    assert message.startswith(f'{sidecar} is not a digest: it should read "<64 hex digits>  '
                              f'epoch_1.pth" (sha256sum\'s format). Checkpoint {checkpoint} '
                              'was not checked and not loaded.')
    assert f'sha256sum epoch_1.pth > epoch_1.pth.sha256' in message
    assert 'damaged' not in message


def test_flipped_bytes_without_a_digest_are_caught_by_the_zip_crcs(checkpoint):
    # Copied without its .sha256: used to load (with an info line) and evaluate garbage.
    assert 'state_dict' in _load_checkpoint(str(checkpoint))
    raw = bytearray(checkpoint.read_bytes())
    start = raw.index(b'data/0') + 200  # inside the tensor's bytes
    for i in range(start, start + 64):
        raw[i] ^= 0xFF
    checkpoint.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match=re.escape(
            f'checkpoint {checkpoint} was not loaded: it is truncated, corrupt or not a '
            'PyTorch checkpoint (member ') + r'\S+ of its zip archive differs from the CRC-32'):
        _load_checkpoint(str(checkpoint))


# ---------------------------------------------------------------- data sets
def test_kvasir_same_image_id_twice_is_refused(kvasir_root):
    path = osp.join(kvasir_root, 'kavsir_bboxes.json')
    with open(path) as f:
        entries = json.load(f)
    first = sorted(entries)[0]
    text = json.dumps(entries)
    # the same id again with another box: json.load used to keep the last one silently
    duplicate = json.dumps({first: dict(entries[first], bbox=[])})[1:-1]
    with open(path, 'w') as f:
        f.write(text[:-1] + ', ' + duplicate + '}')
    with pytest.raises(ValueError, match=re.escape(
            f'{path} has the key {first!r} twice in one object (JSON keeps only the last): '
            'keep one entry')):
        KvasirSegDataset(data_root=kvasir_root, pipeline=[], split='all')


def test_fashion_mnist_images_of_another_size_are_refused(tmp_path):
    write_fashion_mnist(str(tmp_path), num_train=20, num_test=10)
    path = write_idx(str(tmp_path / 'train-images-idx3-ubyte.gz'),
                     np.zeros((20, 20, 20), np.uint8))  # used to train as if 28x28
    with pytest.raises(ValueError, match=re.escape(
            f"{path} holds 20x20 images, not Fashion-MNIST's 28x28")):
        FashionMNISTDataset(data_root=str(tmp_path))


# ---------------------------------------------------------------- tools/test.py flags
def flags(**kwargs):
    return argparse.Namespace(**{**dict(out=None, show=False, show_dir=None, show_max=0,
                                        wait_time=2, tta=False), **kwargs})


CLS_CONFIG = 'configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py'
DET_CONFIG = 'configs/kvasir_kdml_v3.py'


@pytest.mark.parametrize('option', ['out', 'save_predictions'])
def test_an_output_path_that_cannot_be_written_stops_before_evaluation(option, tmp_path):
    # Used to fail only after the whole evaluation, with no metrics printed. (A path under a
    # file: a read-only folder does not stop root, who runs these tests.)
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    cfg = Config.fromfile(CLS_CONFIG)
    if option == 'out':
        path, what = str(blocker / 'preds.pkl'), '--out'
        args = flags(out=path)
    else:
        path, what, args = str(blocker / 'p.pt'), 'test_evaluator.save_predictions', flags()
        cfg.test_evaluator.save_predictions = path
    with pytest.raises(OSError, match=re.escape(f'{what} {path} cannot be written (')):
        apply_test_flags(cfg, args)


def test_a_writable_output_path_leaves_no_file(tmp_path):
    cfg = Config.fromfile(CLS_CONFIG)
    apply_test_flags(cfg, flags(out=str(tmp_path / 'sub' / 'preds.pkl')))
    assert not (tmp_path / 'sub' / 'preds.pkl').exists()


def test_show_dir_on_a_classifier_is_refused(tmp_path):
    # Used to crash at the first picture: AttributeError ... img_path.
    cfg = Config.fromfile(CLS_CONFIG)
    with pytest.raises(ValueError, match=re.escape(
            "--show-dir draws each model's detection boxes, but this config's test set is not "
            "a detection set (model.type = 'KDMLDistiller'")):
        apply_test_flags(cfg, flags(show_dir=str(tmp_path / 'pics')))
    apply_test_flags(Config.fromfile(DET_CONFIG), flags(show_dir=str(tmp_path / 'pics')))


def test_out_must_be_a_pickle():
    with pytest.raises(ValueError, match=re.escape(
            '--out preds.json: the predictions are a pickle, name it .pkl')):
        apply_test_flags(Config.fromfile(CLS_CONFIG), flags(out='preds.json'))
