import logging
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Set, Tuple

import cv2
import numpy as np
import torch
from mmengine.logging import print_log
from torch.utils.data import Dataset

from mmkd.registry import DATASETS
from .image_modes import decode_image, report_color_conversions
from .seeded_split import seeded_subset

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif')
# A TCGA patient is the first three barcode fields (project-TSS-participant), e.g. TCGA-A6-2671;
# the fields after it (sample, portion, slide) vary between the slides of one patient.
TCGA_PATIENT_RE = re.compile(r'TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}', re.IGNORECASE)
_KATHER_HINT = ('data_root/{TRAIN,TEST}/{MSIMUT,MSS}/*.png (unzip CRC_DX_TRAIN_MSIMUT.zip and '
                'CRC_DX_TRAIN_MSS.zip into TRAIN/, CRC_DX_TEST_*.zip into TEST/)')
_KAGGLE_HINT = 'data_root/{MSIMUT_JPEG,MSS_JPEG}/*.jpg'


def class_label(folder_name: str) -> Optional[int]:
    """1 (MSI) for a folder named ``MSIMUT*``/``MSI*``, 0 (MSS) for ``MSS*``, else None."""
    name = folder_name.upper()
    if name.startswith('MSI'):  # covers MSIMUT, MSIMUT_JPEG, MSI
        return 1
    if name.startswith('MSS'):
        return 0
    return None


def tcga_patient_id(path: str) -> str:
    """The ``TCGA-XX-XXXX`` patient barcode (upper-case) in a tile's file name."""
    found = {m.upper() for m in TCGA_PATIENT_RE.findall(osp.basename(path))}
    if len(found) != 1:
        what = 'no TCGA patient barcode' if not found else f'several barcodes {sorted(found)}'
        raise ValueError(f'{path}: file name has {what} (expected one TCGA-XX-XXXX, as in '
                         'blk-...-TCGA-A6-2671-01Z-00-DX1.jpg); the patient-level split needs '
                         'it, so rename or remove the file')
    return found.pop()


def split_patients(patients: Sequence[str], test_ratio: float, seed: int) -> Set[str]:
    """Test patients: :func:`seeded_subset` of the patient ids."""
    return seeded_subset(patients, test_ratio, seed)


def _subdirs(folder: str) -> List[str]:
    return sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)))


def _class_folders(folder: str) -> List[Tuple[str, int]]:
    return [(osp.join(folder, d), class_label(d)) for d in _subdirs(folder)
            if class_label(d) is not None]


def _split_folder(data_root: str, split: str) -> Optional[str]:
    """``TRAIN``/``train`` (any case) under data_root, or None."""
    found = [d for d in _subdirs(data_root) if d.lower() == split]
    if len(found) > 1:
        raise ValueError(f'{data_root} has several {split} folders {found}: keep one')
    return osp.join(data_root, found[0]) if found else None


def _list_images(folder: str) -> List[str]:
    names = sorted(os.listdir(folder))
    # Hidden files are not tiles even with an image extension: macOS zips add ._blk-....png.
    is_tile = [not n.startswith('.') and n.lower().endswith(IMG_EXTENSIONS) for n in names]
    images = [n for n, t in zip(names, is_tile) if t]
    others = [n for n, t in zip(names, is_tile) if not t]
    if others:
        # Said out loud rather than dropped silently: a nested folder may hold tiles.
        print_log(f'{folder}: skipped {len(others)} entries that are not '
                  f'{"/".join(IMG_EXTENSIONS)} files, e.g. {others[:3]}', logger='current',
                  level=logging.WARNING)
    if not images:
        raise ValueError(f'{folder} holds no {"/".join(IMG_EXTENSIONS)} tiles: unpack the '
                         'tiles into it or remove the empty folder')
    return [osp.join(folder, n) for n in images]


@DATASETS.register_module()
class MSITileDataset(Dataset):
    """MSI-vs-MSS classification of TCGA colorectal H&E tiles, read from class folders.

    The class comes from the parent folder: ``MSIMUT*``/``MSI*`` → 1 ('MSI'), ``MSS*`` → 0
    ('MSS'); other folders beside them are skipped with a warning that counts them. Two on-disk
    layouts are read as their publishers ship them (see data/README.md):

    * ``'kather'`` (Kather et al. 2019, Zenodo 2530835): ``data_root/{TRAIN,TEST}/{MSIMUT,MSS}/``
      ``*.png``. Each zip unpacks to one class folder: unzip ``CRC_DX_TRAIN_MSIMUT.zip`` and
      ``CRC_DX_TRAIN_MSS.zip`` into ``data_root/TRAIN/`` and ``CRC_DX_TEST_*.zip`` into
      ``data_root/TEST/`` (lower-case ``train``/``test`` work too). The published split is
      already patient-level and ``split`` picks its folder.
    * ``'kaggle'`` (joangibert/tcga_coad_msi_mss_jpg): ``data_root/{MSIMUT_JPEG,MSS_JPEG}/*.jpg``
      with no split. Tiles are split by patient, using the ``TCGA-XX-XXXX`` barcode in each file
      name, so no patient has tiles in both splits: ``round(test_ratio * num_patients)`` patients
      (at least one per split), drawn with ``seed``, form the test split.

    Each item is ``dict(inputs=uint8 Tensor (3, img_size, img_size) RGB,
    data_samples=dict(gt_label=int, sample_idx=int))``, as in ``CIFAR100Dataset``: collate with
    ``default_collate`` and normalise in ``ClsDataPreprocessor``. Files are listed (sorted) at
    construction and decoded in ``__getitem__``.

    Args:
        data_root (str): Folder that holds ``TRAIN/`` and ``TEST/`` (Kather) or the class
            folders (Kaggle).
        split (str): ``'train'`` or ``'test'``. Defaults to 'train'.
        layout (str): ``'kather'``, ``'kaggle'`` or ``'auto'`` (Kather if data_root has a
            train/test folder, Kaggle if it has class folders). Defaults to 'auto'.
        test_ratio (float): Fraction of patients in the test split (Kaggle layout only).
            Defaults to 0.2.
        seed (int): Seed of the patient split (Kaggle layout only). Defaults to 0.
        img_size (int): Side of the square tiles returned; tiles of another size are resized
            (the real tiles are 224x224). Defaults to 224.
    """

    def __init__(self, data_root: str, split: str = 'train', layout: str = 'auto',
                 test_ratio: float = 0.2, seed: int = 0, img_size: int = 224):
        if split not in ('train', 'test'):
            raise ValueError(f"dataset.split must be 'train' or 'test', got {split!r}")
        if layout not in ('auto', 'kather', 'kaggle'):
            raise ValueError("dataset.layout must be 'auto', 'kather' or 'kaggle', "
                             f'got {layout!r}')
        if not 0 < test_ratio < 1:
            raise ValueError(f'dataset.test_ratio must be in (0, 1), got {test_ratio}')
        if int(img_size) != img_size or img_size < 1:
            raise ValueError(f'dataset.img_size must be a positive integer, got {img_size}')
        if not osp.isdir(data_root):
            raise FileNotFoundError(f'dataset.data_root {data_root} is not a folder: put the '
                                    'MSI/MSS tiles there (see data/README.md)')
        self.data_root, self.split, self.img_size = data_root, split, int(img_size)
        self.classes: Sequence[str] = ('MSS', 'MSI')
        self.layout = self._detect_layout(data_root) if layout == 'auto' else layout
        self.patients: Optional[List[str]] = None
        if self.layout == 'kather':
            self.img_paths, labels = self._list_kather()
        else:
            self.img_paths, labels, self.patients = self._list_kaggle(test_ratio, seed)
        self.labels = np.asarray(labels, dtype=np.int64)
        self._warn_missing_classes()
        # Read from the headers once here: the tiles are decoded as 3-channel RGB.
        report_color_conversions(f'MSITileDataset ({split} split of {data_root})',
                                 self.img_paths)

    @staticmethod
    def _detect_layout(data_root: str) -> str:
        has_splits = any(_split_folder(data_root, s) for s in ('train', 'test'))
        has_classes = bool(_class_folders(data_root))
        if has_splits and has_classes:
            raise ValueError(f'{data_root} has both train/test folders and MSI*/MSS* class '
                             "folders: set dataset.layout='kather' or 'kaggle'")
        if not (has_splits or has_classes):
            raise ValueError(f'{data_root} has neither train/test folders nor MSI*/MSS* class '
                             f'folders: expected {_KATHER_HINT} or {_KAGGLE_HINT}')
        return 'kather' if has_splits else 'kaggle'

    def _list_kather(self) -> Tuple[List[str], List[int]]:
        folder = _split_folder(self.data_root, self.split)
        if folder is None:
            raise ValueError(f'{self.data_root} has no {self.split.upper()} (or {self.split}) '
                             f'folder: the Kather layout is {_KATHER_HINT}')
        return self._list_class_folders(folder, _KATHER_HINT)

    def _list_kaggle(self, test_ratio: float,
                     seed: int) -> Tuple[List[str], List[int], List[str]]:
        paths, labels = self._list_class_folders(self.data_root, _KAGGLE_HINT)
        patients = [tcga_patient_id(p) for p in paths]
        test_patients = split_patients(patients, test_ratio, seed)
        keep = [(p in test_patients) == (self.split == 'test') for p in patients]
        if not any(keep):
            raise ValueError(f'{self.data_root}: the {self.split} split is empty: the '
                             f'{len(set(patients))} patient(s) found cannot be split by '
                             'patient; the Kaggle layout needs tiles of at least 2 patients')
        return ([x for x, k in zip(paths, keep) if k], [x for x, k in zip(labels, keep) if k],
                [x for x, k in zip(patients, keep) if k])

    @staticmethod
    def _list_class_folders(folder: str, hint: str) -> Tuple[List[str], List[int]]:
        class_folders = _class_folders(folder)
        if not class_folders:
            raise ValueError(f'{folder} has no MSI*/MSS* class folders (found '
                             f'{_subdirs(folder)}): expected {hint}')
        others = [d for d in _subdirs(folder) if class_label(d) is None]
        if others:
            # A third class (e.g. Kather's tissue types ADI, DEB, ...) cannot be told apart
            # from a stray folder, so it is not read: say so rather than drop it silently.
            print_log(f'{folder}: skipped {len(others)} folders that are not MSI*/MSS* class '
                      f'folders, e.g. {others[:3]}; this dataset has the 2 classes MSS and MSI',
                      logger='current', level=logging.WARNING)
        paths, labels = [], []
        for class_folder, label in class_folders:
            images = _list_images(class_folder)
            paths += images
            labels += [label] * len(images)
        return paths, labels

    def _warn_missing_classes(self):
        counts: Dict[str, int] = {c: int((self.labels == i).sum())
                                  for i, c in enumerate(self.classes)}
        missing = [c for c, n in counts.items() if n == 0]
        if missing:
            # Legitimate for a tiny patient split, but accuracy on it says little.
            print_log(f'{self.data_root} ({self.layout}, {self.split} split): no {missing} '
                      f'tiles; counts per class: {counts}', logger='current',
                      level=logging.WARNING)

    @property
    def metainfo(self) -> dict:
        return dict(classes=self.classes)

    @property
    def num_patients(self) -> Optional[int]:
        """Number of distinct patients in this split, or None for the Kather layout."""
        return None if self.patients is None else len(set(self.patients))

    def __len__(self) -> int:
        return len(self.img_paths)

    def _load(self, path: str) -> np.ndarray:
        bgr = decode_image(path, cv2.IMREAD_COLOR,
                           f'{path} cannot be decoded as an image (corrupt or truncated): '
                           'replace it with an intact copy or remove it')
        if bgr.shape[:2] != (self.img_size, self.img_size):
            shrink = max(bgr.shape[:2]) > self.img_size
            bgr = cv2.resize(bgr, (self.img_size, self.img_size),
                             interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def __getitem__(self, idx: int) -> dict:
        rgb = self._load(self.img_paths[idx])
        return dict(inputs=torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
                    data_samples=dict(gt_label=int(self.labels[idx]), sample_idx=idx))
