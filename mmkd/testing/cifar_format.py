"""Small CIFAR-100 sets written in the real pickle format, for tests and the bundled sample."""
import os
import os.path as osp
import pickle

import numpy as np


def _class_templates(num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A colour and a coarse 4x4 pattern per class, upsampled to 32x32: learnable in a few
    epochs, yet not separable by the mean colour alone."""
    coarse = rng.uniform(40, 215, size=(num_classes, 3, 4, 4))
    return np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3)


def _images(templates, labels, rng) -> np.ndarray:
    noise = rng.normal(0, 30, size=(len(labels), 3, 32, 32))
    shift = rng.integers(-3, 4, size=(len(labels), 2))
    imgs = templates[labels] + noise
    imgs = np.stack([np.roll(im, tuple(s), axis=(1, 2)) for im, s in zip(imgs, shift)])
    return np.clip(imgs, 0, 255).astype(np.uint8).reshape(len(labels), -1)


def write_cifar100(root: str, num_train_per_class: int = 10, num_test_per_class: int = 2,
                   num_classes: int = 100, seed: int = 0) -> str:
    """Write ``root/cifar-100-python/{train,test,meta}`` exactly as the real archive lays them
    out (latin1-readable pickles with ``data`` uint8 (N, 3072), ``fine_labels``,
    ``coarse_labels``, ``filenames``, ``batch_label``). Returns the ``cifar-100-python`` path."""
    rng = np.random.default_rng(seed)
    templates = _class_templates(num_classes, rng)
    folder = osp.join(root, 'cifar-100-python')
    os.makedirs(folder, exist_ok=True)
    for split, per_class in (('train', num_train_per_class), ('test', num_test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(num_classes), per_class))
        entry = {
            'filenames': [f'sample_{split}_{i:05d}.png' for i in range(len(labels))],
            'batch_label': f'{split} batch (generated sample)',
            'fine_labels': labels.tolist(),
            'coarse_labels': (labels % 20).tolist(),
            'data': _images(templates, labels, rng),
        }
        with open(osp.join(folder, split), 'wb') as f:
            pickle.dump(entry, f, protocol=2)
    meta = {'fine_label_names': [f'class_{c:03d}' for c in range(num_classes)],
            'coarse_label_names': [f'superclass_{c:02d}' for c in range(20)]}
    with open(osp.join(folder, 'meta'), 'wb') as f:
        pickle.dump(meta, f, protocol=2)
    return folder
