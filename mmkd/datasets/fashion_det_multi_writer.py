"""A 10-class detection set of several Fashion-MNIST articles per image, in COCO format.

The one-article set of :mod:`.fashion_det_writer` is too easy to show distillation (every
model finds every article). This one has what a small detector finds hard: 1-4 articles of
the 10 classes per image, sides spread over 16-64 px, articles partly hiding each other and
unlabelled fragments of other articles as clutter, on the same texture.
"""
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .fashion_det_writer import prepare_out, scale_article, soften
from .fashion_mnist_dataset import DEFAULT_DATA_ROOT, FASHION_MNIST_CLASSES, load_fashion_mnist
from .synthetic_scenes import mucosa

# a new article is placed at most this many times before it is left out of the image
_PLACE_TRIES = 20
# a fragment is a crop of this fraction of an article's side (a sleeve, a heel, a strap)
_FRAGMENT_CROP = (0.35, 0.6)

# (scaled uint8 (s, s), inside bool (s, s), x0, y0): one article at its position
Piece = Tuple[np.ndarray, np.ndarray, int, int]


class EmptyArticleError(ValueError):
    """An article without a pixel above the threshold at its drawn side; ``article`` is its
    position in the list given to :func:`render_scene`."""

    def __init__(self, article: int, msg: str) -> None:
        super().__init__(msg)
        self.article = article


def paste_pieces(img: np.ndarray, pieces: Sequence[Piece]) -> Tuple[List[List[int]], List[int]]:
    """Paint ``pieces`` in order (a later one hides an earlier one) and return, per piece,
    the box ``[x1, y1, x2, y2]`` of its pixels still visible (``x2 = last column + 1``, the
    Kvasir convention, i.e. COCO ``w = x2 - x1``) and their count, ``[]`` and 0 when none.

    Args:
        img (np.ndarray): float RGB (H, W, 3), painted in place: a piece's ``inside`` pixels
            take its grey value.
        pieces (Sequence[Piece]): ``(scaled, inside, x0, y0)``, each fully inside ``img``.

    Returns:
        tuple: ``(boxes, areas)``.
    """
    owner = np.full(img.shape[:2], -1, np.int64)
    for k, (scaled, inside, x0, y0) in enumerate(pieces):
        side = scaled.shape[0]
        img[y0:y0 + side, x0:x0 + side][inside] = scaled[inside, None]
        owner[y0:y0 + side, x0:x0 + side][inside] = k
    boxes, areas = [], []
    for k in range(len(pieces)):
        rows, cols = np.nonzero(owner == k)
        areas.append(int(rows.size))
        boxes.append([int(cols.min()), int(rows.min()), int(cols.max()) + 1,
                      int(rows.max()) + 1] if rows.size else [])
    return boxes, areas


def place(owner: np.ndarray, inside: np.ndarray, totals: Sequence[int], max_hidden: float,
          rng: np.random.Generator) -> Optional[Tuple[int, int]]:
    """A uniform position ``(x0, y0)`` for a new article on top of the placed ones, such that
    every placed article keeps at least ``1 - max_hidden`` of its pixels visible; updates
    ``owner`` (the index of the visible article per pixel, -1 for none) and returns the
    position, or None after a few failed draws.

    Args:
        owner (np.ndarray): int (H, W), updated in place when a position is found.
        inside (np.ndarray): bool (s, s), the new article's pixels.
        totals (Sequence[int]): Pixel count of each placed article (index = owner value).
        max_hidden (float): Largest hidden fraction of a placed article, in [0, 1).
        rng (np.random.Generator): Draws the positions.
    """
    side, size = inside.shape[0], owner.shape[0]
    for _ in range(_PLACE_TRIES):
        y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        window = owner[y0:y0 + side, x0:x0 + side]
        covered = np.bincount(window[inside & (window >= 0)], minlength=len(totals))
        visible = np.bincount(owner[owner >= 0], minlength=len(totals)) - covered
        if all(v >= (1 - max_hidden) * t for v, t in zip(visible, totals)):
            window[inside] = len(totals)
            return x0, y0
    return None


def _side(side_range: Tuple[int, int], rng: np.random.Generator) -> int:
    # log-uniform: as many articles of 16-32 px as of 32-64 px, as in a scene with depth
    low, high = side_range
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def _fragment(article: np.ndarray, side_range: Tuple[int, int], threshold: int,
              size: int, rng: np.random.Generator) -> Piece:
    """A crop of ``article`` scaled to the side of a small article: clutter with the texture
    of an article but not its shape, never labelled."""
    crop = int(round(rng.uniform(*_FRAGMENT_CROP) * article.shape[0]))
    y, x = (int(v) for v in rng.integers(0, article.shape[0] - crop + 1, size=2))
    side = max(4, int(round(_side(side_range, rng) * crop / article.shape[0])))
    scaled, inside = scale_article(article[y:y + crop, x:x + crop], side, threshold)
    y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    return scaled, inside, x0, y0


def render_scene(articles: Sequence[np.ndarray], fragments: Sequence[np.ndarray], size: int,
                 side_range: Tuple[int, int], max_hidden: float, threshold: int,
                 rng: np.random.Generator) -> Tuple[np.ndarray, List[dict]]:
    """One image: the texture, the ``fragments`` under the ``articles``, softened.

    Args:
        articles (Sequence[np.ndarray]): uint8 (28, 28) articles, painted in this order, each
            at a side drawn log-uniform in ``side_range`` and placed by :func:`place`.
        fragments (Sequence[np.ndarray]): uint8 (28, 28) articles a crop of which is clutter.
        size (int): Image side.
        side_range (tuple): Article side in pixels, ``(low, high)``.
        max_hidden (float): See :func:`place`.
        threshold (int): An article's pixels are its scaled pixels above it (0-255).
        rng (np.random.Generator): Draws the texture, sides and positions.

    Returns:
        tuple: ``(rgb uint8 (size, size, 3), [dict(article=k, side, bbox, area, hidden)])``,
        one entry per article placed, ``k`` its position in ``articles``, ``hidden`` the
        fraction of its pixels under later articles; the first always is placed, a later one
        is left out when no position keeps the placed ones visible enough.
    """
    img = mucosa((size, size), rng)
    clutter = [_fragment(f, side_range, threshold, size, rng) for f in fragments]
    owner = np.full((size, size), -1, np.int64)
    pieces, totals, placed = [], [], []
    for k, article in enumerate(articles):
        side = _side(side_range, rng)
        scaled, inside = scale_article(article, side, threshold)
        if not inside.any():
            raise EmptyArticleError(k, f'no pixel above threshold={threshold} at side {side}')
        pos = place(owner, inside, totals, max_hidden, rng)
        if pos is not None:
            pieces.append((scaled, inside, *pos))
            totals.append(int(inside.sum()))
            placed.append((k, side))
    boxes, areas = paste_pieces(img, clutter + pieces)
    return soften(img), [
        dict(article=k, side=side, bbox=box, area=area, hidden=round(1 - area / total, 4))
        for (k, side), box, area, total in zip(placed, boxes[len(clutter):],
                                               areas[len(clutter):], totals)]


def _check_args(num_train: int, num_val: int, size: int, side_range: Tuple[int, int],
                num_range: Tuple[int, int], fragment_range: Tuple[int, int],
                max_hidden: float, threshold: int) -> None:
    for key, value in (('num_train', num_train), ('num_val', num_val)):
        if int(value) != value or value < 1:
            raise ValueError(f'{key} must be a positive integer, got {value!r}')
    low, high = side_range
    if not 4 <= low <= high <= size:
        raise ValueError(f'side_range must be (low, high) pixels with 4 <= low <= high <= size '
                         f'({size}), got {side_range}')
    low, high = num_range
    if not 1 <= low <= high:
        raise ValueError(f'num_range must be (low, high) with 1 <= low <= high, got {num_range}')
    low, high = fragment_range
    if not 0 <= low <= high:
        raise ValueError('fragment_range must be (low, high) with 0 <= low <= high, got '
                         f'{fragment_range}')
    if not 0 <= max_hidden < 1:
        raise ValueError(f'max_hidden must be in [0, 1), got {max_hidden!r}')
    if not 0 <= threshold < 255:
        raise ValueError(f'threshold must be in [0, 255), got {threshold!r}')


def coco_categories() -> List[dict]:
    """The 10 Fashion-MNIST classes as COCO categories, ids 1-10 (label + 1)."""
    return [dict(id=i + 1, name=name) for i, name in enumerate(FASHION_MNIST_CLASSES)]


def write_fashion_det_multi(out: str,
                            data_root: str = DEFAULT_DATA_ROOT,
                            num_train: int = 1000,
                            num_val: int = 200,
                            size: int = 128,
                            side_range: Tuple[int, int] = (16, 64),
                            num_range: Tuple[int, int] = (1, 4),
                            fragment_range: Tuple[int, int] = (1, 3),
                            max_hidden: float = 0.4,
                            threshold: int = 25,
                            seed: int = 0,
                            jpeg_quality: int = 90,
                            overwrite: bool = False) -> Dict[str, int]:
    """Write a 10-class detection set of several Fashion-MNIST articles per image, in COCO
    format (mmdet's ``CocoDataset`` with ``metainfo=dict(classes=FASHION_MNIST_CLASSES)``).

    Each ``size`` x ``size`` image is the texture of the one-article set with
    ``uniform(*num_range)`` articles (inclusive) and ``uniform(*fragment_range)`` fragments.
    Articles come from the IDX ``train`` split for the train images and from ``t10k`` for the
    val images, each article used once. An article's side is log-uniform in ``side_range``
    (pixels); it is placed at a uniform position fully inside, on top of the earlier ones,
    so long as each earlier one keeps at least ``1 - max_hidden`` of its pixels (else, after
    a few draws, it is left out: an image has at least one article). Its pixels above
    ``threshold`` replace the background with their grey value; its box is the extent of
    its pixels still visible. A fragment is an unlabelled crop of 35-60 % of another article
    (train: the train split, val: t10k), scaled like a small article and painted first, under
    the articles. Written::

        out/images/<id>.jpg          RGB, JPEG quality ``jpeg_quality``; train_00000 ...,
                                     val_00000 ...
        out/annotations/train.json   COCO: images (id, file_name 'train_00000.jpg', width,
        out/annotations/val.json     height), annotations (bbox [x, y, w, h] of the visible
                                     pixels, x + w = last column + 1; area = visible pixel
                                     count; category_id = label + 1; iscrowd 0; and where
                                     the article comes from: source = {split, index, side,
                                     hidden: the fraction of its pixels under later ones}),
                                     categories (coco_categories())

    Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed writes the
    same bytes.

    Args:
        out (str): Output folder (created).
        data_root (str): Folder of the Fashion-MNIST IDX files. Defaults to
            ``'/usr/share/datasets/fashion-mnist/'``.
        num_train (int): Train images. Defaults to 1000.
        num_val (int): Val images. Defaults to 200.
        size (int): Image side in pixels. Defaults to 128.
        side_range (tuple): Article side in pixels, ``(low, high)``. Defaults to (16, 64).
        num_range (tuple): Articles per image, ``(low, high)`` inclusive. Defaults to (1, 4).
        fragment_range (tuple): Fragments per image, ``(low, high)`` inclusive. Defaults to
            (1, 3).
        max_hidden (float): Largest fraction of an article's pixels hidden by later
            articles, in [0, 1). Defaults to 0.4.
        threshold (int): An article's pixels are its scaled pixels above it (0-255).
            Defaults to 25.
        seed (int): Seed. Defaults to 0.
        jpeg_quality (int): JPEG quality of the images. Defaults to 90.
        overwrite (bool): Replace existing ``images/`` and ``annotations/``. Defaults to
            False.

    Returns:
        Dict[str, int]: Images and articles written, ``dict(train=, val=, train_articles=,
        val_articles=)``.
    """
    _check_args(num_train, num_val, size, side_range, num_range, fragment_range, max_hidden,
                threshold)
    rng = np.random.default_rng(seed)
    counts = [(int(rng.integers(num_range[0], num_range[1] + 1)),
               int(rng.integers(fragment_range[0], fragment_range[1] + 1)))
              for _ in range(num_train + num_val)]
    splits = []
    for name, source, num, split_counts in (('train', 'train', num_train, counts[:num_train]),
                                            ('val', 't10k', num_val, counts[num_train:])):
        images, labels = load_fashion_mnist(data_root, source == 't10k')
        needed = sum(n for n, _ in split_counts)
        if needed > len(images):
            raise ValueError(f'the {num} {name} images need {needed} articles but the {source} '
                             f'split in {data_root} has {len(images)}')
        splits.append((name, source, images, labels, split_counts,
                       rng.permutation(len(images))[:needed]))
    prepare_out(out, overwrite, ('images', 'annotations'))
    scene = dict(size=size, side_range=side_range, max_hidden=max_hidden, threshold=threshold)
    result = {}
    for name, source, images, labels, split_counts, chosen in splits:
        coco = _write_split(out, name, (images, labels, source, data_root), split_counts,
                            chosen, scene, jpeg_quality, rng)
        result[name] = len(coco['images'])
        result[f'{name}_articles'] = len(coco['annotations'])
    return result


def _write_split(out: str, name: str, idx: tuple, split_counts: Sequence[Tuple[int, int]],
                 chosen: np.ndarray, scene: dict, jpeg_quality: int,
                 rng: np.random.Generator) -> dict:
    """Write one split's images and ``annotations/<name>.json``; returns the COCO dict.
    ``idx`` is ``(images, labels, 'train' | 't10k', data_root)`` of the IDX split, ``scene``
    the size arguments of :func:`render_scene`, ``split_counts`` (articles, fragments) per
    image and ``chosen`` the split's articles in order of use."""
    images, labels, source, data_root = idx
    size = scene['size']
    digits = max(5, len(str(len(split_counts) - 1)))
    coco = dict(images=[], annotations=[], categories=coco_categories())
    start = 0
    for img_id, (num, num_fragments) in enumerate(split_counts):
        indices = chosen[start:start + num]
        start += num
        fragments = rng.integers(0, len(images), size=num_fragments)
        try:
            rgb, placed = render_scene([images[i] for i in indices],
                                       [images[i] for i in fragments], rng=rng, **scene)
        except EmptyArticleError as e:
            raise ValueError(f'{osp.join(data_root, source)}-images-idx3-ubyte[.gz] article '
                             f'{indices[e.article]}: {e}; lower threshold or raise '
                             'side_range') from e
        file_name = f'{name}_{img_id:0{digits}d}.jpg'
        cv2.imwrite(osp.join(out, 'images', file_name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        coco['images'].append(dict(id=img_id, file_name=file_name, width=size, height=size))
        for p in placed:
            index = int(indices[p['article']])
            x1, y1, x2, y2 = p['bbox']
            coco['annotations'].append(dict(
                id=len(coco['annotations']) + 1, image_id=img_id,
                category_id=int(labels[index]) + 1, bbox=[x1, y1, x2 - x1, y2 - y1],
                area=p['area'], iscrowd=0, source=dict(split=source, index=index,
                                                       side=p['side'], hidden=p['hidden'])))
    with open(osp.join(out, 'annotations', f'{name}.json'), 'w', encoding='utf-8') as f:
        json.dump(coco, f)
    return coco
