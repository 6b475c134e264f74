import json
import logging
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Set, Tuple

import cv2
import numpy as np
from mmdet.datasets import BaseDetDataset
from mmengine.logging import print_log
from PIL import Image

from mmkd.registry import DATASETS
from .image_modes import report_color_conversions

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')
BOX_SOURCES = ('json', 'mask', 'auto')
_COORD_KEYS = ('xmin', 'ymin', 'xmax', 'ymax')
_DOWNLOAD_HINT = ('unzip kvasir-seg.zip (Kvasir-SEG/images, masks, kavsir_bboxes.json) or '
                  'point data_root/ann_file/data_prefix at HyperKvasir segmented-images/ '
                  '(see data/README.md)')


def _strip_image_ext(name: str) -> str:
    """``name`` without a trailing image extension; ids such as UUIDs keep their other dots."""
    stem, ext = osp.splitext(name)
    return stem if ext.lower() in IMG_EXTENSIONS else name


def _is_number(value) -> bool:
    # bool is an int subclass, but ``true`` as a coordinate is a broken file, not the value 1.
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _examples(ids: Sequence[str], num: int = 3) -> str:
    ids = list(ids)
    more = f' and {len(ids) - num} more' if len(ids) > num else ''
    return f'{ids[:num]}{more}'


def _warn(msg: str) -> None:
    print_log(msg, logger='current', level=logging.WARNING)


def list_image_files(folder: str, what: str) -> Dict[str, str]:
    """Map file stem (the sample id) → path for every image file in ``folder``.

    Hidden files (macOS zips add ``._<id>.jpg``) and non-image entries are skipped with a
    warning that counts them. Two files with one stem (``a.jpg`` and ``a.png``) are an error,
    because the id would not say which one is meant.

    Args:
        folder (str): Folder to list.
        what (str): What the folder is for the error messages, e.g. ``'data_prefix.img'``.

    Returns:
        Dict[str, str]: ``{id: path}``.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{what} folder {folder} does not exist: {_DOWNLOAD_HINT}')
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
    if skipped:
        _warn(f'{folder}: skipped {len(skipped)} entries that are not '
              f'{"/".join(IMG_EXTENSIONS)} files, e.g. {skipped[:3]}')
    return found


def read_id_list(path: str) -> List[str]:
    """Ids in a split list file: one per line, with or without an image extension; blank
    lines are ignored. A repeated id is an error (it would be sampled twice)."""
    with open(path, encoding='utf-8') as f:
        ids = [_strip_image_ext(line.strip()) for line in f if line.strip()]
    seen: Set[str] = set()
    repeated = [i for i in ids if i in seen or seen.add(i)]
    if repeated:
        raise ValueError(f'{path} lists {_examples(repeated)} more than once: remove the '
                         'repeated lines')
    return ids


def seeded_val_ids(ids: Sequence[str], val_ratio: float, seed: int) -> Set[str]:
    """Validation ids: ``round(val_ratio * n)`` of the sorted ids, drawn with
    ``numpy.random.default_rng(seed)``; at least one per split when there are ≥ 2 ids."""
    unique = sorted(set(ids))
    num_val = int(round(val_ratio * len(unique)))
    if len(unique) >= 2:
        num_val = min(max(num_val, 1), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[i] for i in order[:num_val]}


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
    raw = np.fromfile(mask_path, dtype=np.uint8)
    try:
        mask = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE) if raw.size else None
    except cv2.error:
        mask = None
    if mask is None:
        raise ValueError(f'mask {mask_path} cannot be decoded as an image (corrupt or '
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


@DATASETS.register_module()
class KvasirSegDataset(BaseDetDataset):
    """Polyp detection on Kvasir-SEG (or HyperKvasir segmented-images), one class ``polyp``.

    Reads the dataset as shipped: ``data_root/images/<id>.jpg``, ``data_root/masks/<id>.jpg``
    and ``data_root/kavsir_bboxes.json`` (the misspelling is the real file name)::

        {"<id>": {"height": int, "width": int,
                  "bbox": [{"label": "polyp", "xmin": int, "ymin": int,
                            "xmax": int, "ymax": int}, ...]}}

    For HyperKvasir pass ``ann_file='bounding-boxes.json'`` with ``data_root`` at
    ``hyper-kvasir/segmented-images``; other folder names go in ``data_prefix``.

    ``load_data_list`` returns mmdet-format dicts, so mmdet's ``LoadImageFromFile``,
    ``LoadAnnotations(with_bbox=True)``, ``Resize``, ``RandomFlip``, ``PackDetInputs`` and
    detectors work unchanged::

        dict(img_path, img_id=<file stem>, height, width, mask_path (None if no mask),
             instances=[dict(bbox=[x1, y1, x2, y2], bbox_label=0, ignore_flag=0), ...])

    ``height``/``width`` are the JSON values, checked against the image header on disk. Every
    box of a multi-polyp image is kept.

    **Boxes.** ``box_source='json'`` takes them from the JSON (every image needs an entry);
    ``'mask'`` derives them from the masks (JSON not read); ``'auto'`` uses the JSON entry when
    an image has one and its mask otherwise (all masks when ``ann_file`` does not exist). A
    mask is binarised with ``> 127`` and each 8-connected component of at least
    ``min_mask_area`` pixels gives one box, with ``x2 = last column + 1`` (half-open pixel
    boxes). The real JSON's convention relative to its masks (half-open or inclusive) is not
    documented; JSON coordinates are used as written. Boxes partly outside the image are
    clipped to it, boxes left with no area (entirely outside, or ``xmax <= xmin``) are
    dropped; both are counted in a warning. An image left with no box is an error rather than
    skipped: every Kvasir-SEG image shows a polyp, so an empty one means a broken annotation.

    **Split.** ``'train'``/``'val'`` use the official lists (the MediaEval Medico 880/120
    ``train.txt``/``val.txt``, one id per line) when both ``split_files`` exist under
    ``data_root``; otherwise ``round(val_ratio * n)`` of the sorted ids drawn with
    ``numpy.random.default_rng(seed)`` are the val split (same seed, same split). ``'all'``
    takes every image. Images in neither list are left out of train/val with a warning.

    Args:
        data_root (str): Dataset folder, e.g. ``data/Kvasir-SEG``. Defaults to ''.
        ann_file (str): Box JSON, relative to ``data_root`` unless absolute.
            Defaults to 'kavsir_bboxes.json'.
        data_prefix (dict, optional): ``img`` and ``mask`` folders relative to ``data_root``;
            a missing key keeps its default. Defaults to
            ``dict(img='images/', mask='masks/')``.
        split (str): ``'train'``, ``'val'`` or ``'all'``. Defaults to 'train'.
        split_files (dict, optional): ``dict(train=..., val=...)`` list files relative to
            ``data_root``; None disables them. Defaults to
            ``dict(train='train.txt', val='val.txt')``.
        val_ratio (float): Val fraction of the seeded split. Defaults to 0.2.
        seed (int): Seed of the seeded split. Defaults to 0.
        box_source (str): ``'json'``, ``'mask'`` or ``'auto'``. Defaults to 'json'.
        min_mask_area (int): Smallest mask component (pixels) that gives a box.
            Defaults to 16.
        **kwargs: ``BaseDetDataset`` arguments (``pipeline``, ``test_mode``, ...).
    """

    METAINFO = dict(classes=('polyp', ), palette=[(220, 20, 60)])

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = 'kavsir_bboxes.json',
                 data_prefix: Optional[dict] = None,
                 split: str = 'train',
                 split_files: Optional[dict] = dict(train='train.txt', val='val.txt'),
                 val_ratio: float = 0.2,
                 seed: int = 0,
                 box_source: str = 'json',
                 min_mask_area: int = 16,
                 **kwargs) -> None:
        if split not in ('train', 'val', 'all'):
            raise ValueError(f"dataset.split must be 'train', 'val' or 'all', got {split!r}")
        if box_source not in BOX_SOURCES:
            raise ValueError(f'dataset.box_source must be one of {BOX_SOURCES}, '
                             f'got {box_source!r}')
        if not 0 < val_ratio < 1:
            raise ValueError(f'dataset.val_ratio must be in (0, 1), got {val_ratio}')
        if int(min_mask_area) != min_mask_area or min_mask_area < 0:
            raise ValueError('dataset.min_mask_area must be a non-negative integer, got '
                             f'{min_mask_area}')
        prefix = dict(img='images/', mask='masks/')
        prefix.update(data_prefix or {})
        # split_files=None (or {}) disables the official lists; copied, so the shared
        # default dict is never mutated.
        self.split_files = dict(split_files) if split_files else {}
        if self.split_files and set(self.split_files) != {'train', 'val'}:
            raise ValueError('dataset.split_files must have exactly the keys train and val, '
                             f'got {sorted(self.split_files)}')
        self.split, self.val_ratio, self.seed = split, val_ratio, seed
        self.box_source, self.min_mask_area = box_source, int(min_mask_area)
        super().__init__(data_root=data_root, ann_file=ann_file, data_prefix=prefix, **kwargs)

    # ------------------------------------------------------------------ ids and split
    def _split_paths(self) -> Optional[Tuple[str, str]]:
        """The two official list files, if both exist; one without the other is an error."""
        if not self.split_files:
            return None
        paths = {k: v if osp.isabs(v) else osp.join(self.data_root, v)
                 for k, v in self.split_files.items()}
        exists = {k: osp.isfile(p) for k, p in paths.items()}
        if not any(exists.values()):
            return None
        if not all(exists.values()):
            # Falling back to a random split here would silently change the val set.
            missing = [paths[k] for k, e in exists.items() if not e]
            raise FileNotFoundError(f'split list {missing[0]} is missing while '
                                    f'{[p for p in paths.values() if p not in missing][0]} '
                                    'exists: add it, or remove both to use the seeded split '
                                    '(dataset.split_files=None ignores them)')
        return paths['train'], paths['val']

    def _select_split(self, ids: Sequence[str]) -> List[str]:
        if self.split == 'all':
            selected = sorted(ids)
        else:
            paths = self._split_paths()
            if paths is None:
                val = seeded_val_ids(ids, self.val_ratio, self.seed)
                selected = sorted(i for i in ids if (i in val) == (self.split == 'val'))
                how = f'seeded split (val_ratio={self.val_ratio}, seed={self.seed})'
            else:
                selected = self._split_from_lists(ids, *paths)
                how = f'list {paths[self.split == "val"]}'
        if not selected:
            raise ValueError(f'{self.data_root}: the {self.split} split is empty '
                             f'({len(ids)} images found'
                             + ('' if self.split == 'all' else f', {how}') + '): add images '
                             'or fix the split lists')
        return selected

    def _split_from_lists(self, ids: Sequence[str], train_path: str,
                          val_path: str) -> List[str]:
        lists = dict(train=read_id_list(train_path), val=read_id_list(val_path))
        known = set(ids)
        for name, path in (('train', train_path), ('val', val_path)):
            unknown = [i for i in lists[name] if i not in known]
            if unknown:
                raise ValueError(f'{path} lists {len(unknown)} ids with no image/annotation '
                                 f'in {self.data_root}: {_examples(unknown)}; the list and the '
                                 'dataset do not match (wrong data_root or a stale list)')
        both = set(lists['train']) & set(lists['val'])
        if both:
            raise ValueError(f'{train_path} and {val_path} both list {_examples(sorted(both))}:'
                             ' an image must be in one split only')
        unlisted = known - set(lists['train']) - set(lists['val'])
        if unlisted:
            _warn(f'{len(unlisted)} images of {self.data_root} are in neither {train_path} nor '
                  f'{val_path} and are left out of the {self.split} split, e.g. '
                  f'{_examples(sorted(unlisted))}')
        return sorted(lists[self.split])

    # ------------------------------------------------------------------ annotations
    def _load_json(self) -> Optional[dict]:
        if self.box_source == 'mask':
            return None
        if not osp.isfile(self.ann_file):
            if self.box_source == 'json':
                raise FileNotFoundError(f'annotation file {self.ann_file} (dataset.ann_file) '
                                        f'not found: {_DOWNLOAD_HINT}; or set '
                                        "box_source='mask' to derive boxes from the masks")
            _warn(f'{self.ann_file} not found: every box is derived from the masks '
                  "(box_source='auto')")
            return None
        try:
            with open(self.ann_file, encoding='utf-8') as f:
                content = json.load(f, object_pairs_hook=self._unique_keys)
        except json.JSONDecodeError as e:
            raise ValueError(f'{self.ann_file} is not valid JSON: {e.msg} at line {e.lineno} '
                             f'column {e.colno} (char {e.pos}); fix the file or unpack it '
                             'again') from e
        except UnicodeDecodeError as e:
            raise ValueError(f'{self.ann_file} is not UTF-8 text ({e}): it is not the box '
                             'JSON, check dataset.ann_file') from e
        if not isinstance(content, dict):
            raise ValueError(f'{self.ann_file} holds a JSON {type(content).__name__}, '
                             'expected an object keyed by image id')
        entries = {}
        for key, entry in content.items():
            sample_id = _strip_image_ext(key)  # tolerate keys written as file names
            if sample_id in entries:
                raise ValueError(f'{self.ann_file} has two entries for id {sample_id!r}: '
                                 'keep one')
            entries[sample_id] = entry
        return entries

    def _unique_keys(self, pairs: List[tuple]) -> dict:
        """``json.load`` keeps the last of two equal keys without a word (the same image id
        twice would keep its last box): refuse them, naming the key."""
        out = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f'{self.ann_file} has the key {key!r} twice in one object '
                                 '(JSON keeps only the last): keep one entry, or merge their '
                                 'boxes into one "bbox" list')
            out[key] = value
        return out

    def _parse_entry(self, sample_id: str, entry) -> Tuple[int, int, List[list]]:
        """Height, width and raw ``[x1, y1, x2, y2]`` boxes of one JSON entry."""
        where = f'{self.ann_file}: entry {sample_id!r}'
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
            if label not in self.metainfo['classes']:
                raise ValueError(f"{where}: 'bbox'[{k}]['label'] is {label!r}, expected one "
                                 f'of {self.metainfo["classes"]}')
            boxes.append([box[key] for key in _COORD_KEYS])
        return int(entry['height']), int(entry['width']), boxes

    def load_data_list(self) -> List[dict]:
        """Read images, masks and boxes of the selected split (see the class docstring).

        Returns:
            List[dict]: mmdet data infos, sorted by id.
        """
        images = list_image_files(self.data_prefix['img'], 'data_prefix.img')
        if not images:
            raise ValueError(f'{self.data_prefix["img"]} (data_prefix.img) holds no images: '
                             f'{_DOWNLOAD_HINT}')
        needs_masks = self.box_source == 'mask'
        if osp.isdir(self.data_prefix['mask']) or needs_masks:
            masks = list_image_files(self.data_prefix['mask'], 'data_prefix.mask')
        else:
            masks = {}  # box_source json/auto may run without masks
        orphans = sorted(set(masks) - set(images))
        if orphans:
            _warn(f'{self.data_prefix["mask"]}: {len(orphans)} masks have no image in '
                  f'{self.data_prefix["img"]} and are not used, e.g. {_examples(orphans)}')
        entries = self._load_json()
        if entries is not None:
            missing = sorted(set(entries) - set(images))
            if missing:
                raise FileNotFoundError(
                    f'{self.ann_file} lists {len(missing)} images that are not in '
                    f'{self.data_prefix["img"]}: {_examples(missing)} (e.g. '
                    f'{osp.join(self.data_prefix["img"], missing[0])}.jpg); restore them or '
                    'check data_prefix.img')
            if self.box_source == 'json':
                extra = sorted(set(images) - set(entries))
                if extra:
                    raise ValueError(
                        f'{len(extra)} images have no entry in {self.ann_file}, e.g. '
                        f'{images[extra[0]]}: add their boxes, or set '
                        "box_source='auto' to derive them from the masks")
        entries = entries or {}

        stats = dict(clipped=[], dropped=[], specks=0)
        data_list = []
        for sample_id in self._select_split(sorted(images)):
            img_path, mask_path = images[sample_id], masks.get(sample_id)
            if sample_id in entries:
                height, width, boxes = self._parse_entry(sample_id, entries[sample_id])
                disk = image_size(img_path)
                if disk != (height, width):
                    raise ValueError(
                        f'{img_path} is {disk[1]}x{disk[0]} (width x height) on disk but '
                        f'{self.ann_file} says {width}x{height}: the JSON and the image do '
                        'not belong together; restore the original image or entry')
                source = 'json'
            else:
                if mask_path is None:
                    expected = osp.join(self.data_prefix['mask'], sample_id + '.jpg')
                    why = ('' if self.box_source == 'mask' else
                           f'has no entry in {self.ann_file} and ')
                    raise FileNotFoundError(f'{img_path} {why}has no mask {expected}: add the '
                                            'mask (or a JSON entry), or remove the image')
                height, width = image_size(img_path)
                boxes, specks, mask_shape = mask_boxes(mask_path, self.min_mask_area)
                if mask_shape != (height, width):
                    raise ValueError(f'{mask_path} is {mask_shape[1]}x{mask_shape[0]} but its '
                                     f'image {img_path} is {width}x{height}: masks must match '
                                     'their images pixel for pixel')
                stats['specks'] += specks
                source = 'mask'
            instances = self._clip_boxes(sample_id, boxes, height, width, stats)
            if not instances:
                raise ValueError(
                    f'{img_path} has no polyp box (source: {source}'
                    + (f', {len(boxes)} boxes dropped as outside the image or empty'
                       if boxes else '') + '): every Kvasir-SEG image shows a polyp, so fix '
                    'its annotation or mask, or remove the image')
            data_list.append(dict(img_path=img_path, img_id=sample_id, height=height,
                                  width=width, mask_path=mask_path, box_source=source,
                                  instances=instances))
        self._report(data_list, stats)
        # The configs' loaders decode every image as 3-channel (BGR): say which are not.
        report_color_conversions(f'KvasirSegDataset ({self.split} split of {self.data_root})',
                                 [d['img_path'] for d in data_list])
        return data_list

    @staticmethod
    def _clip_boxes(sample_id: str, boxes: List[list], height: int, width: int,
                    stats: dict) -> List[dict]:
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

    def _report(self, data_list: List[dict], stats: dict) -> None:
        if stats['clipped']:
            _warn(f'{self.ann_file}: clipped {len(stats["clipped"])} boxes that reach outside '
                  f'their image, e.g. in {_examples(sorted(set(stats["clipped"])))}')
        if stats['dropped']:
            _warn(f'{self.ann_file}: dropped {len(stats["dropped"])} boxes that lie entirely '
                  'outside their image or have no area (xmax <= xmin or ymax <= ymin), e.g. '
                  f'in {_examples(sorted(set(stats["dropped"])))}')
        if stats['specks']:
            _warn(f'{self.data_prefix["mask"]}: ignored {stats["specks"]} mask components '
                  f'smaller than min_mask_area={self.min_mask_area} pixels')
        num_boxes = sum(len(d['instances']) for d in data_list)
        multi = sum(len(d['instances']) > 1 for d in data_list)
        from_masks = sum(d['box_source'] == 'mask' for d in data_list)
        print_log(f'KvasirSegDataset {self.split} split of {self.data_root}: '
                  f'{len(data_list)} images, {num_boxes} boxes, {multi} multi-polyp images'
                  + (f', {from_masks} images boxed from masks' if from_masks else ''),
                  logger='current')
