"""A real-content detection set in the Kvasir-SEG layout, from Fashion-MNIST articles."""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Tuple

import cv2
import numpy as np

# The texture and the split lists are those of the generated Kvasir-SEG sample, so this set
# differs from it only in what the object is: a real photographed article, not a drawn blob.
from .fashion_mnist_dataset import DEFAULT_DATA_ROOT, FASHION_MNIST_CLASSES, load_fashion_mnist
from .synthetic_scenes import mucosa, write_split_files

JSON_NAME = 'kavsir_bboxes.json'  # the real Kvasir-SEG file name, misspelling included
SOURCES_NAME = 'fashion_sources.json'


def scale_article(article: np.ndarray, side: int,
                  threshold: int) -> Tuple[np.ndarray, np.ndarray]:
    """``article`` (uint8 (28, 28), background 0) scaled to ``side`` x ``side`` (area
    averaging when shrinking, bilinear when enlarging) and its pixels ``> threshold`` (0-255),
    the article's own pixels: ``(scaled uint8, inside bool)``, both (side, side)."""
    interp = cv2.INTER_AREA if side < article.shape[0] else cv2.INTER_LINEAR
    scaled = cv2.resize(article, (side, side), interpolation=interp)
    return scaled, scaled > threshold


def render_article(article: np.ndarray, size: int, side: int, threshold: int,
                   rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One image: ``article`` scaled to ``side`` x ``side`` and placed at a uniform position
    fully inside a ``size`` x ``size`` mucosa-like texture.

    Args:
        article (np.ndarray): uint8 (28, 28), background 0.
        size (int): Image side.
        side (int): Side of the scaled article, in ``[1, size]``.
        threshold (int): The article's scaled pixels ``> threshold`` (0-255) replace the
            background with their grey value and are the mask.
        rng (np.random.Generator): Draws the position and the texture.

    Returns:
        tuple: ``(rgb uint8 (size, size, 3), mask uint8 (size, size) of 0/255)``.
    """
    scaled, inside = scale_article(article, side, threshold)
    y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    img = mucosa((size, size), rng)
    img[y0:y0 + side, x0:x0 + side][inside] = scaled[inside, None]
    mask = np.zeros((size, size), np.uint8)
    mask[y0:y0 + side, x0:x0 + side][inside] = 255
    return soften(img), mask


def soften(img: np.ndarray) -> np.ndarray:
    """The blur of the Kvasir sample writer (a camera's softness; masks and boxes stay sharp)
    on a float RGB image, clipped to uint8."""
    return np.clip(cv2.GaussianBlur(img, (3, 3), 0), 0, 255).astype(np.uint8)


def encoded_mask(mask: np.ndarray, jpeg_quality: int) -> Tuple[bytes, List[int]]:
    """JPEG bytes of a 0/255 mask and the box of the mask as decoded and binarised ``> 127``
    (what ``KvasirSegDataset`` reads), ``[x1, y1, x2, y2]`` with ``x2 = last column + 1``.
    The box is taken after the JPEG round trip so that it equals the mask on disk exactly."""
    ok, buf = cv2.imencode('.jpg', mask, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    assert ok, 'cv2.imencode failed on a uint8 mask'
    rows, cols = np.nonzero(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) > 127)
    if rows.size == 0:
        return buf.tobytes(), []
    return buf.tobytes(), [int(cols.min()), int(rows.min()), int(cols.max()) + 1,
                           int(rows.max()) + 1]


def _check_args(num_train: int, num_val: int, size: int, scale_range: Tuple[float, float],
                threshold: int) -> None:
    for key, value in (('num_train', num_train), ('num_val', num_val)):
        if int(value) != value or value < 1:
            raise ValueError(f'{key} must be a positive integer, got {value!r}')
    if int(size) != size or size < 16:
        raise ValueError(f'size must be an integer >= 16 (pixels), got {size!r}')
    low, high = scale_range
    if not 0 < low <= high <= 1:
        raise ValueError('scale_range must be (low, high) with 0 < low <= high <= 1 (the '
                         f'article side as a fraction of the image side), got {scale_range}')
    if not 0 <= threshold < 255:
        raise ValueError(f'threshold must be in [0, 255), got {threshold!r}')


def prepare_out(out: str, overwrite: bool,
                names: Tuple[str, ...] = ('images', 'masks')) -> None:
    """Create ``out/<name>/`` for each of ``names``; one that is not empty is an error, or
    replaced with ``overwrite``."""
    folders = [osp.join(out, name) for name in names]
    if any(osp.isdir(f) and os.listdir(f) for f in folders):
        if not overwrite:
            listed = ' or '.join(f'{name}/' for name in names)
            raise FileExistsError(f'{out} already holds {listed}: choose an empty '
                                  'folder, or pass overwrite=True (--overwrite) to replace them')
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    for folder in folders:
        os.makedirs(folder, exist_ok=True)


def _write_sample(out: str, sample_id: str, rgb: np.ndarray, mask: np.ndarray,
                  jpeg_quality: int) -> List[int]:
    """Write ``images/<id>.jpg`` and ``masks/<id>.jpg``; returns the mask file's box."""
    mask_jpeg, box = encoded_mask(mask, jpeg_quality)
    cv2.imwrite(osp.join(out, 'images', sample_id + '.jpg'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    with open(osp.join(out, 'masks', sample_id + '.jpg'), 'wb') as f:
        f.write(mask_jpeg)
    return box


def write_fashion_det(out: str,
                      data_root: str = DEFAULT_DATA_ROOT,
                      num_train: int = 1000,
                      num_val: int = 200,
                      size: int = 128,
                      scale_range: Tuple[float, float] = (0.3, 0.7),
                      threshold: int = 25,
                      seed: int = 0,
                      jpeg_quality: int = 90,
                      overwrite: bool = False) -> Dict[str, int]:
    """Write a one-class detection set of Fashion-MNIST articles in the Kvasir-SEG layout.

    Each ``size`` x ``size`` image is the mucosa-like texture of the generated Kvasir-SEG
    sample with one real article on it: drawn without replacement from the IDX ``train``
    split for ``train.txt`` and from ``t10k`` for ``val.txt``, scaled to a side of
    ``uniform(*scale_range) * size`` pixels and placed at a uniform position fully inside.
    The article's pixels above ``threshold`` (after scaling) replace the background with
    their grey value and form the mask; the box is the mask's extent. An article can be
    several mask components (a sandal's straps), so use the JSON boxes
    (``box_source='json'``, the default), not per-component mask boxes. Written::

        out/images/<id>.jpg      RGB, JPEG quality ``jpeg_quality``
        out/masks/<id>.jpg       0/255, binarised > 127 by the loader
        out/kavsir_bboxes.json   {id: {height, width, bbox: [{label: 'polyp', xmin, ymin,
                                 xmax, ymax}]}}: one box per image, ``xmax = last column +
                                 1``, equal to the extent of the mask on disk
        out/train.txt, val.txt   ids ``train_00000`` ..., ``val_00000`` ...
        out/fashion_sources.json {id: {split: 'train'|'t10k', index, label, class}}: where
                                 each article comes from (the loader does not read it)

    The label is ``'polyp'``, the one class of ``KvasirSegDataset``, so its loader and the
    Kvasir configs run unchanged. Everything is drawn from ``numpy.random.default_rng(seed)``.

    Args:
        out (str): Output folder (created).
        data_root (str): Folder of the Fashion-MNIST IDX files. Defaults to
            ``'/usr/share/datasets/fashion-mnist/'``.
        num_train (int): Train images. Defaults to 1000.
        num_val (int): Val images. Defaults to 200.
        size (int): Image side in pixels. Defaults to 128.
        scale_range (tuple): Article side as a fraction of ``size``, ``(low, high)``.
            Defaults to (0.3, 0.7).
        threshold (int): Mask threshold on the scaled article (0-255). Defaults to 25.
        seed (int): Seed. Defaults to 0.
        jpeg_quality (int): JPEG quality of images and masks. Defaults to 90.
        overwrite (bool): Replace existing ``images/`` and ``masks/``. Defaults to False.

    Returns:
        Dict[str, int]: ``dict(train=num_train, val=num_val)``.
    """
    _check_args(num_train, num_val, size, scale_range, threshold)
    rng = np.random.default_rng(seed)
    splits = []
    for name, test_mode, num in (('train', False, num_train), ('val', True, num_val)):
        images, labels = load_fashion_mnist(data_root, test_mode)
        if num > len(images):
            raise ValueError(f'num_{name} is {num} but the {"t10k" if test_mode else "train"} '
                             f'split in {data_root} has {len(images)} articles')
        splits.append((name, 't10k' if test_mode else 'train', images, labels,
                       np.sort(rng.choice(len(images), num, replace=False))))
    prepare_out(out, overwrite)
    annotations, sources, ids = {}, {}, {}
    for name, source, images, labels, chosen in splits:
        digits = max(5, len(str(len(chosen) - 1)))
        ids[name] = [f'{name}_{i:0{digits}d}' for i in range(len(chosen))]
        for sample_id, index in zip(ids[name], chosen):
            side = max(1, int(round(rng.uniform(*scale_range) * size)))
            rgb, mask = render_article(images[index], size, side, threshold, rng)
            box = _write_sample(out, sample_id, rgb, mask, jpeg_quality)
            if not box:
                raise ValueError(f'{source} article {index} has no pixel above threshold='
                                 f'{threshold} at side {side}: lower threshold or raise '
                                 'scale_range')
            annotations[sample_id] = dict(
                height=size, width=size,
                bbox=[dict(label='polyp', xmin=box[0], ymin=box[1], xmax=box[2], ymax=box[3])])
            label = int(labels[index])
            sources[sample_id] = dict(split=source, index=int(index), label=label,
                                      **{'class': FASHION_MNIST_CLASSES[label]})
    for file_name, content in ((JSON_NAME, annotations), (SOURCES_NAME, sources)):
        with open(osp.join(out, file_name), 'w', encoding='utf-8') as f:
            json.dump(content, f)
    write_split_files(out, ids['train'], ids['val'])
    return dict(train=len(ids['train']), val=len(ids['val']))
