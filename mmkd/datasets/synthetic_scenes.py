"""What the generated image sets share (the Kvasir-SEG-layout sample and tests, the
Fashion-MNIST detection sets): an endoscopy-like background and the split lists."""
import os.path as osp
from typing import Sequence, Tuple

import cv2
import numpy as np


def smooth_noise(shape: Tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """Noise in [-1, 1] that varies over about ``cells`` blobs per side (upsampled grid)."""
    h, w = shape
    grid = rng.uniform(-1, 1, size=(cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def mucosa(shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """RGB float background: pink-red mucosa with smooth shading, fine texture, a few dark
    vessel-like curves and the dark corners of an endoscope's vignette."""
    h, w = shape
    base = np.array([200, 95, 90]) + rng.normal(0, 10, size=3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    img += 35 * smooth_noise(shape, 3, rng)[..., None]
    img += 8 * smooth_noise(shape, 24, rng)[..., None] * np.array([1.0, 0.7, 0.7])
    vessels = np.zeros((h, w), np.float32)
    for _ in range(rng.integers(3, 7)):
        pts = np.cumsum(rng.normal(0, 0.08 * min(h, w), size=(6, 2)), axis=0)
        pts += rng.uniform((0, 0), (w, h))
        cv2.polylines(vessels, [pts.astype(np.int32)], False, 1.0, int(rng.integers(1, 3)))
    vessels = cv2.GaussianBlur(vessels, (5, 5), 0)
    img -= vessels[..., None] * np.array([60, 55, 40])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    radius = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    img *= np.clip(1.15 - 0.45 * radius ** 2, 0.2, 1.0)[..., None]
    return img


def write_split_files(root: str, train_ids: Sequence[str],
                      val_ids: Sequence[str]) -> Tuple[str, str]:
    """Write ``root/train.txt`` and ``root/val.txt``, one id per line, as the MediaEval Medico
    ``kvasir-seg-train-val`` lists; returns their paths."""
    paths = []
    for name, ids in (('train.txt', train_ids), ('val.txt', val_ids)):
        path = osp.join(root, name)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(''.join(f'{i}\n' for i in ids))
        paths.append(path)
    return paths[0], paths[1]
