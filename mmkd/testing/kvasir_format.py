"""Small polyp sets in the Kvasir-SEG layout (``images/``, ``masks/``, box JSON), for tests
and the bundled sample."""
import json
import os
import os.path as osp
import uuid
from typing import List, Tuple

import cv2
import numpy as np

from mmkd.datasets.synthetic_scenes import mucosa as _mucosa
from mmkd.datasets.synthetic_scenes import smooth_noise as _smooth_noise

_ID_ALPHABET = np.array(list('abcdefghijklmnopqrstuvwxyz0123456789'))


def _kvasir_id(rng: np.random.Generator) -> str:
    # Real ids are 25-char cuids such as cju0qkwl35piu0993l0dewei2: 'c' + lowercase alnum.
    return 'c' + ''.join(rng.choice(_ID_ALPHABET, 24))


def _uuid_id(rng: np.random.Generator) -> str:
    # HyperKvasir names, e.g. 0004a718-546c-41c2-9c69-c4685093a039, from the seeded rng.
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _place_polyps(shape: Tuple[int, int], num: int,
                  rng: np.random.Generator) -> List[Tuple[tuple, tuple, float]]:
    """Ellipses ``(centre, axes, angle)`` fully inside the image and apart from each other,
    so that each polyp is one mask component and one box."""
    h, w = shape
    occupied = np.zeros(shape, np.uint8)
    polyps = []
    while len(polyps) < num:
        scale = min(h, w) * (0.22 if num == 1 else 0.15)
        axes = tuple(int(a) for a in rng.uniform(0.6, 1.0, size=2) * scale)
        reach = max(axes) + 3
        if 2 * reach >= min(h, w):
            continue
        centre = (int(rng.integers(reach, w - reach)), int(rng.integers(reach, h - reach)))
        angle = float(rng.uniform(0, 180))
        blob = np.zeros(shape, np.uint8)
        cv2.ellipse(blob, centre, axes, angle, 0, 360, 1, -1)
        # A 6-pixel gap keeps the JPEG-compressed masks of two polyps apart.
        if (cv2.dilate(blob, np.ones((13, 13), np.uint8)) & occupied).any():
            continue
        occupied |= blob
        polyps.append((centre, axes, angle))
    return polyps


def _draw_polyp(img: np.ndarray, mask: np.ndarray, polyp: tuple,
                rng: np.random.Generator) -> List[int]:
    """Paint a shaded polyp into ``img`` and 255 into ``mask``; returns its box
    ``[xmin, ymin, xmax, ymax]`` with ``xmax = last column + 1`` (the convention of
    ``KvasirSegDataset``'s mask-derived boxes)."""
    centre, axes, angle = polyp
    blob = np.zeros(mask.shape, np.uint8)
    cv2.ellipse(blob, centre, axes, angle, 0, 360, 255, -1)
    # Dome shading: brighter towards an off-centre highlight, a slightly paler, pinker tissue.
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = (centre[0] - axes[0] * 0.3, centre[1] - axes[1] * 0.3)
    dist = np.hypot(xx - light[0], yy - light[1]) / max(axes)
    colour = np.array([230, 135, 125]) + rng.normal(0, 8, size=3)
    shaded = colour * np.clip(1.15 - 0.5 * dist, 0.5, 1.2)[..., None]
    shaded += 10 * _smooth_noise(mask.shape, 12, rng)[..., None]
    inside = blob > 0
    img[inside] = shaded[inside]
    spot = (int(light[0]), int(light[1]))
    cv2.circle(img, spot, max(1, min(axes) // 6), (250, 240, 235), -1)
    mask[inside] = 255
    rows, cols = np.nonzero(inside)
    return [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]


def write_kvasir_seg(root: str, num_images: int = 20, seed: int = 0,
                     json_name: str = 'kavsir_bboxes.json', multi_polyp_every: int = 7,
                     img_size_range: Tuple[Tuple[int, int], Tuple[int, int]] = ((240, 320),
                                                                                (300, 400)),
                     id_style: str = 'kvasir', jpeg_quality: int = 90) -> str:
    """Write a generated polyp set under ``root`` in the Kvasir-SEG layout; returns root.

    ``root/images/<id>.jpg`` (RGB mucosa-like background with shaded polyp blobs),
    ``root/masks/<id>.jpg`` (0/255 JPEG masks of the blobs) and ``root/<json_name>`` in the
    real schema ``{id: {height, width, bbox: [{label: 'polyp', xmin, ymin, xmax, ymax}]}}``,
    whose boxes are the blobs' bounding boxes (``xmax = last column + 1``). Every
    ``multi_polyp_every``-th image (the 1st, 8th, ... with the default 7) has two polyps.

    Args:
        root (str): Output folder (created).
        num_images (int): Number of images. Defaults to 20.
        seed (int): Seed of everything generated, ids included. Defaults to 0.
        json_name (str): Box JSON name; HyperKvasir's is ``'bounding-boxes.json'``.
            Defaults to 'kavsir_bboxes.json'.
        multi_polyp_every (int): Period of two-polyp images; 0 for none. Defaults to 7.
        img_size_range (tuple): ``((min_h, max_h), (min_w, max_w))``, inclusive.
            Defaults to ``((240, 320), (300, 400))``.
        id_style (str): ``'kvasir'`` (25-char ids like ``cju0qkwl35piu0993l0dewei2``) or
            ``'uuid'`` (HyperKvasir names). Defaults to 'kvasir'.
        jpeg_quality (int): JPEG quality of images and masks. Defaults to 90.
    """
    if id_style not in ('kvasir', 'uuid'):
        raise ValueError(f"id_style must be 'kvasir' or 'uuid', got {id_style!r}")
    rng = np.random.default_rng(seed)
    new_id = _kvasir_id if id_style == 'kvasir' else _uuid_id
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'masks'), exist_ok=True)
    (min_h, max_h), (min_w, max_w) = img_size_range
    ids: List[str] = []
    while len(ids) < num_images:
        candidate = new_id(rng)
        if candidate not in ids:
            ids.append(candidate)
    annotations = {}
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    for i, sample_id in enumerate(ids):
        shape = (int(rng.integers(min_h, max_h + 1)), int(rng.integers(min_w, max_w + 1)))
        num_polyps = 2 if multi_polyp_every and i % multi_polyp_every == 0 else 1
        img = _mucosa(shape, rng)
        mask = np.zeros(shape, np.uint8)
        boxes = [_draw_polyp(img, mask, p, rng) for p in _place_polyps(shape, num_polyps, rng)]
        img = cv2.GaussianBlur(img, (3, 3), 0)
        rgb = np.clip(img, 0, 255).astype(np.uint8)
        cv2.imwrite(osp.join(root, 'images', sample_id + '.jpg'),
                    cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        cv2.imwrite(osp.join(root, 'masks', sample_id + '.jpg'), mask, params)
        annotations[sample_id] = dict(
            height=shape[0], width=shape[1],
            bbox=[dict(label='polyp', xmin=b[0], ymin=b[1], xmax=b[2], ymax=b[3])
                  for b in boxes])
    with open(osp.join(root, json_name), 'w', encoding='utf-8') as f:
        json.dump(annotations, f)
    return root
