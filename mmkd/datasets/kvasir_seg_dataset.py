import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from mmdet.datasets import BaseDetDataset
from mmengine.logging import print_log

from mmkd.registry import DATASETS
from .image_modes import report_color_conversions
from .kvasir_seg_parsing import (DOWNLOAD_HINT, IMG_EXTENSIONS, clip_boxes, id_examples, image_size,
                                 list_image_files, load_box_json, mask_boxes, parse_entry,
                                 read_id_list, seeded_val_ids)

BOX_SOURCES = ('json', 'mask', 'auto')


def _warn(msg: str) -> None:
    print_log(msg, logger='current', level=logging.WARNING)


def _image_files(folder: str, what: str) -> Dict[str, str]:
    """:func:`list_image_files`, warning about the entries it skipped."""
    found, skipped = list_image_files(folder, what)
    if skipped:
        _warn(f'{folder}: skipped {len(skipped)} entries that are not '
              f'{"/".join(IMG_EXTENSIONS)} files, e.g. {skipped[:3]}')
    return found


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
                                 f'in {self.data_root}: {id_examples(unknown)}; the list and the '
                                 'dataset do not match (wrong data_root or a stale list)')
        both = set(lists['train']) & set(lists['val'])
        if both:
            raise ValueError(f'{train_path} and {val_path} both list {id_examples(sorted(both))}:'
                             ' an image must be in one split only')
        unlisted = known - set(lists['train']) - set(lists['val'])
        if unlisted:
            _warn(f'{len(unlisted)} images of {self.data_root} are in neither {train_path} nor '
                  f'{val_path} and are left out of the {self.split} split, e.g. '
                  f'{id_examples(sorted(unlisted))}')
        return sorted(lists[self.split])

    # ------------------------------------------------------------------ annotations
    def _load_json(self) -> Optional[dict]:
        if self.box_source == 'mask':
            return None
        if not osp.isfile(self.ann_file):
            if self.box_source == 'json':
                raise FileNotFoundError(f'annotation file {self.ann_file} (dataset.ann_file) '
                                        f'not found: {DOWNLOAD_HINT}; or set '
                                        "box_source='mask' to derive boxes from the masks")
            _warn(f'{self.ann_file} not found: every box is derived from the masks '
                  "(box_source='auto')")
            return None
        return load_box_json(self.ann_file)

    def load_data_list(self) -> List[dict]:
        """Read images, masks and boxes of the selected split (see the class docstring).

        Returns:
            List[dict]: mmdet data infos, sorted by id.
        """
        images = _image_files(self.data_prefix['img'], 'data_prefix.img')
        if not images:
            raise ValueError(f'{self.data_prefix["img"]} (data_prefix.img) holds no images: '
                             f'{DOWNLOAD_HINT}')
        needs_masks = self.box_source == 'mask'
        if osp.isdir(self.data_prefix['mask']) or needs_masks:
            masks = _image_files(self.data_prefix['mask'], 'data_prefix.mask')
        else:
            masks = {}  # box_source json/auto may run without masks
        orphans = sorted(set(masks) - set(images))
        if orphans:
            _warn(f'{self.data_prefix["mask"]}: {len(orphans)} masks have no image in '
                  f'{self.data_prefix["img"]} and are not used, e.g. {id_examples(orphans)}')
        entries = self._load_json()
        if entries is not None:
            missing = sorted(set(entries) - set(images))
            if missing:
                raise FileNotFoundError(
                    f'{self.ann_file} lists {len(missing)} images that are not in '
                    f'{self.data_prefix["img"]}: {id_examples(missing)} (e.g. '
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
                height, width, boxes = parse_entry(self.ann_file, sample_id, entries[sample_id],
                                                   self.metainfo['classes'])
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
            instances = clip_boxes(sample_id, boxes, height, width, stats)
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

    def _report(self, data_list: List[dict], stats: dict) -> None:
        if stats['clipped']:
            _warn(f'{self.ann_file}: clipped {len(stats["clipped"])} boxes that reach outside '
                  f'their image, e.g. in {id_examples(sorted(set(stats["clipped"])))}')
        if stats['dropped']:
            _warn(f'{self.ann_file}: dropped {len(stats["dropped"])} boxes that lie entirely '
                  'outside their image or have no area (xmax <= xmin or ymax <= ymin), e.g. '
                  f'in {id_examples(sorted(set(stats["dropped"])))}')
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
