"""Reading Kvasir-SEG as shipped, for :class:`~mmkd.datasets.KvasirSegDataset`.

Image and mask folders, split lists, the box JSON and the masks, turned into ids, paths and
``[x1, y1, x2, y2]`` boxes, with an error naming the file, entry or key for every broken
input. Nothing here logs: what the dataset only warns about (skipped files, clipped boxes) is
returned for it to report.
"""
import json
import math
import os
import os.path as osp
from typing import Dict, List, Sequence, Set, Tuple

import cv2
import numpy as np
from PIL import Image

from .image_modes import decode_image
from .seeded_split import seeded_subset

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')
DOWNLOAD_HINT = ('unzip kvasir-seg.zip (Kvasir-SEG/images, masks, kavsir_bboxes.json) or '
                 'point data_root/ann_file/data_prefix at HyperKvasir segmented-images/ '
                 '(see data/README.md)')
_COORD_KEYS = ('xmin', 'ymin', 'xmax', 'ymax')


def strip_image_ext(name: str) -> str:
    """``name`` without a trailing image extension; ids such as UUIDs keep their other dots."""
    stem, ext = osp.splitext(name)
    return stem if ext.lower() in IMG_EXTENSIONS else name


def _is_number(value) -> bool:
    # bool is an int subclass, but ``true`` as a coordinate is a broken file, not the value 1.
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def id_examples(ids: Sequence[str], num: int = 3) -> str:
    """The first ``num`` ids for a message, and how many more there are."""
    ids = list(ids)
    more = f' and {len(ids) - num} more' if len(ids) > num else ''
    return f'{ids[:num]}{more}'


def list_image_files(folder: str, what: str) -> Tuple[Dict[str, str], List[str]]:
    """Map file stem (the sample id) → path for every image file in ``folder``.

    Hidden files (macOS zips add ``._<id>.jpg``) and non-image entries are skipped and
    returned, for a warning that counts them. Two files with one stem (``a.jpg`` and
    ``a.png``) are an error, because the id would not say which one is meant.

    Args:
        folder (str): Folder to list.
        what (str): What the folder is for the error messages, e.g. ``'data_prefix.img'``.

    Returns:
        tuple[Dict[str, str], List[str]]: ``{id: path}`` and the names of the skipped
        entries.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{what} folder {folder} does not exist: {DOWNLOAD_HINT}')
    found: Dict[str, str] = {}
    skipped = []
    for name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(name)
        if name.startswith('.') or ext.lower() not in IMG_EXTENSIONS:
            skipped.append(name)
            continue
        if stem in found:
            raise ValueError(f'{folder} has two files for id {stem!r}: '
                             f'{osp.basename(found[stem])} and {name}; keep one')
        found[stem] = osp.join(folder, name)
    return found, skipped


def read_id_list(path: str) -> List[str]:
    """Ids in a split list file: one per line, with or without an image extension; blank
    lines are ignored. A repeated id is an error (it would be sampled twice)."""
    with open(path, encoding='utf-8') as f:
        ids = [strip_image_ext(line.strip()) for line in f if line.strip()]
    seen: Set[str] = set()
    repeated = [i for i in ids if i in seen or seen.add(i)]
    if repeated:
        raise ValueError(f'{path} lists {id_examples(repeated)} more than once: remove the '
                         'repeated lines')
    return ids


def seeded_val_ids(ids: Sequence[str], val_ratio: float, seed: int) -> Set[str]:
    """Validation ids: :func:`seeded_subset` of the image ids."""
    return seeded_subset(ids, val_ratio, seed)


def mask_boxes(mask_path: str, min_area: int) -> Tuple[List[List[int]], int, Tuple[int, int]]:
    """Boxes of the 8-connected components of a binarised polyp mask.

    The mask is decoded as grayscale (3-channel JPEG masks are converted) and binarised with
    ``> 127``, which removes the JPEG noise around 0 and 255. A box is
    ``[x1, y1, x2, y2]`` with ``x2 = last column + 1`` and ``y2 = last row + 1`` (half-open,
    so ``x2 - x1`` is the width in pixels and a one-pixel component has width 1).

    Args:
        mask_path (str): Mask file.
        min_area (int): Components with fewer pixels are ignored (JPEG specks).

    Returns:
        tuple: ``(boxes, num_ignored_components, (height, width))``, boxes sorted by
        ``(x1, y1)``.
    """
    mask = decode_image(mask_path, cv2.IMREAD_GRAYSCALE,
                        f'mask {mask_path} cannot be decoded as an image (corrupt or '
                        'truncated): replace it with an intact copy')
    binary = (mask > 127).astype(np.uint8)
    num, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    boxes, ignored = [], 0
    for x, y, w, h, area in stats[1:]:  # label 0 is the background
        if area < min_area:
            ignored += 1
            continue
        boxes.append([int(x), int(y), int(x + w), int(y + h)])
    return sorted(boxes), ignored, mask.shape[:2]


def image_size(path: str) -> Tuple[int, int]:
    """``(height, width)`` of an image file from its header (PIL opens lazily, no decode)."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except OSError as e:  # UnidentifiedImageError is an OSError
        raise ValueError(f'{path} cannot be read as an image ({e}): replace it with an intact '
                         'copy or remove it') from e
    return height, width


def load_box_json(ann_file: str) -> dict:
    """The entries of the box JSON ``ann_file``, keyed by image id (keys written as file
    names lose their image extension); an existing file is expected."""

    def unique_keys(pairs: List[tuple]) -> dict:
        # json.load keeps the last of two equal keys without a word (the same image id twice
        # would keep its last box): refuse them, naming the key.
        out = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f'{ann_file} has the key {key!r} twice in one object '
                                 '(JSON keeps only the last): keep one entry, or merge their '
                                 'boxes into one "bbox" list')
            out[key] = value
        return out

    try:
        with open(ann_file, encoding='utf-8') as f:
            content = json.load(f, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as e:
        raise ValueError(f'{ann_file} is not valid JSON: {e.msg} at line {e.lineno} '
                         f'column {e.colno} (char {e.pos}); fix the file or unpack it '
                         'again') from e
    except UnicodeDecodeError as e:
        raise ValueError(f'{ann_file} is not UTF-8 text ({e}): it is not the box '
                         'JSON, check dataset.ann_file') from e
    if not isinstance(content, dict):
        raise ValueError(f'{ann_file} holds a JSON {type(content).__name__}, '
                         'expected an object keyed by image id')
    entries = {}
    for key, entry in content.items():
        sample_id = strip_image_ext(key)  # tolerate keys written as file names
        if sample_id in entries:
            raise ValueError(f'{ann_file} has two entries for id {sample_id!r}: '
                             'keep one')
        entries[sample_id] = entry
    return entries


def parse_entry(ann_file: str, sample_id: str, entry,
                classes: Sequence[str]) -> Tuple[int, int, List[list]]:
    """Height, width and raw ``[x1, y1, x2, y2]`` boxes of one JSON entry.

    Args:
        ann_file (str): The JSON file, for the error messages.
        sample_id (str): The entry's image id.
        entry (Any): The entry as loaded.
        classes (Sequence[str]): Allowed box labels; a box without one is a polyp.

    Returns:
        tuple: ``(height, width, boxes)``, boxes with the coordinates as written.
    """
    where = f'{ann_file}: entry {sample_id!r}'
    if not isinstance(entry, dict):
        raise ValueError(f'{where} is a {type(entry).__name__}, expected an object with '
                         'height, width and bbox')
    for key in ('height', 'width', 'bbox'):
        if key not in entry:
            raise ValueError(f'{where} has no {key!r} key (keys: {sorted(entry)})')
    for key in ('height', 'width'):
        if not _is_number(entry[key]) or entry[key] <= 0:
            raise ValueError(f'{where}: {key!r} must be a positive number, got '
                             f'{entry[key]!r}')
    if not isinstance(entry['bbox'], list):
        raise ValueError(f"{where}: 'bbox' must be a list of boxes, got "
                         f'{type(entry["bbox"]).__name__}')
    boxes = []
    for k, box in enumerate(entry['bbox']):
        if not isinstance(box, dict):
            raise ValueError(f"{where}: 'bbox'[{k}] is a {type(box).__name__}, expected "
                             'an object with xmin, ymin, xmax, ymax')
        for key in _COORD_KEYS:
            if key not in box:
                raise ValueError(f"{where}: 'bbox'[{k}] has no {key!r} key "
                                 f'(keys: {sorted(box)})')
            if not _is_number(box[key]):
                raise ValueError(f"{where}: 'bbox'[{k}][{key!r}] must be a number, got "
                                 f'{box[key]!r}')
        # label is optional (one class), but another class name means another dataset.
        label = box.get('label', 'polyp')
        if label not in classes:
            raise ValueError(f"{where}: 'bbox'[{k}]['label'] is {label!r}, expected one "
                             f'of {classes}')
        boxes.append([box[key] for key in _COORD_KEYS])
    return int(entry['height']), int(entry['width']), boxes


def clip_boxes(sample_id: str, boxes: List[list], height: int, width: int,
               stats: dict) -> List[dict]:
    """mmdet instances of ``boxes`` clipped to the image; ``sample_id`` is appended to
    ``stats['clipped']`` per clipped box and to ``stats['dropped']`` per box left with no
    area."""
    instances = []
    for box in boxes:
        x1, y1 = max(box[0], 0), max(box[1], 0)
        x2, y2 = min(box[2], width), min(box[3], height)
        if x2 <= x1 or y2 <= y1:
            stats['dropped'].append(sample_id)
            continue
        if [x1, y1, x2, y2] != list(box):
            stats['clipped'].append(sample_id)
        instances.append(dict(bbox=[x1, y1, x2, y2], bbox_label=0, ignore_flag=0))
    return instances
