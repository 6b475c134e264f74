"""Small MSI/MSS tile sets in the Kather (Zenodo) and Kaggle folder layouts, for tests and the
bundled samples."""
import os
import os.path as osp

import cv2
import numpy as np

# Tissue source site codes that occur in TCGA-COAD barcodes.
_TSS = ('A6', 'AA', 'AZ', 'CM', 'D5', 'DM', 'F4', 'G4', 'NH', 'QG')
_ALPHABET = np.array(list('ABCDEFGHIJKLMNOPQRSTUVWXYZ'))


def _patient_ids(num_patients: int, rng: np.random.Generator) -> list:
    ids = set()
    while len(ids) < num_patients:
        ids.add(f'TCGA-{rng.choice(_TSS)}-{rng.integers(1000, 10000)}')
    return sorted(ids)


def _tile(label: int, stain: np.ndarray, img_size: int, rng: np.random.Generator) -> np.ndarray:
    """An H&E-like RGB tile: pink (eosin) background with purple (haematoxylin) nuclei; MSI
    tiles get many small nuclei (lymphocyte-rich), MSS tiles fewer, larger ones."""
    scale = img_size / 64
    img = np.empty((img_size, img_size, 3), np.float32)
    img[:] = stain[0]
    img += rng.normal(0, 6, size=(img_size, img_size, 1))  # fibre texture, same in each channel
    num, radius = ((rng.integers(28, 40), (1.5, 3.0)) if label == 1 else
                   (rng.integers(6, 10), (4.0, 7.0)))
    for _ in range(num):
        centre = tuple(int(v) for v in rng.integers(0, img_size, size=2))
        axes = tuple(max(1, int(round(r * scale))) for r in rng.uniform(*radius, size=2))
        colour = tuple(float(c) for c in stain[1] + rng.normal(0, 10, size=3))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return np.clip(img, 0, 255).astype(np.uint8)


def _patient_stain(rng: np.random.Generator) -> np.ndarray:
    """Per-patient (background, nucleus) RGB colours: stain varies between slides."""
    background = np.array([235, 170, 200]) + rng.normal(0, 8, size=3)
    nucleus = np.array([95, 55, 140]) + rng.normal(0, 10, size=3)
    return np.stack([background, nucleus])


def _test_patients(labels: np.ndarray) -> set:
    """Kather-style patient-level split: about a third of each class's patients, at least one
    per class and split when the class has two or more."""
    test = set()
    for c in (0, 1):
        members = np.flatnonzero(labels == c)
        if len(members) >= 2:
            test.update(members[-max(1, len(members) // 3):].tolist())
    return test


def write_msi_tiles(root: str, layout: str = 'kaggle', num_patients: int = 6,
                    tiles_per_patient: int = 4, img_size: int = 64, seed: int = 0) -> str:
    """Write generated MSI/MSS tiles under ``root`` in a real dataset's layout; returns root.

    * ``'kaggle'``: ``root/{MSIMUT_JPEG,MSS_JPEG}/blk-<12 letters>-TCGA-XX-XXXX-01Z-00-DX1.jpg``,
      no split (as joangibert/tcga_coad_msi_mss_jpg).
    * ``'kather'``: ``root/{TRAIN,TEST}/{MSIMUT,MSS}/blk-<12 letters>-TCGA-XX-XXXX-01Z-00-DX1.png``
      with a patient-level train/test split (as Zenodo 2530835).

    Each patient belongs to one class (half MSI, half MSS) and has its own stain colours; the
    class shows in the texture (see ``_tile``), so a classifier can learn it.
    """
    if layout not in ('kaggle', 'kather'):
        raise ValueError(f"layout must be 'kaggle' or 'kather', got {layout!r}")
    if num_patients < 2:
        raise ValueError(f'num_patients must be >= 2 (one per class at least), got {num_patients}')
    rng = np.random.default_rng(seed)
    patients = _patient_ids(num_patients, rng)
    labels = rng.permutation(np.arange(num_patients) % 2)
    test = _test_patients(labels)
    for p, (patient, label) in enumerate(zip(patients, labels)):
        stain = _patient_stain(rng)
        if layout == 'kaggle':
            folder = osp.join(root, ('MSS_JPEG', 'MSIMUT_JPEG')[label])
        else:
            folder = osp.join(root, 'TEST' if p in test else 'TRAIN', ('MSS', 'MSIMUT')[label])
        os.makedirs(folder, exist_ok=True)
        for _ in range(tiles_per_patient):
            name = f'blk-{"".join(rng.choice(_ALPHABET, 12))}-{patient}-01Z-00-DX1'
            tile = cv2.cvtColor(_tile(int(label), stain, img_size, rng), cv2.COLOR_RGB2BGR)
            if layout == 'kaggle':
                cv2.imwrite(osp.join(folder, name + '.jpg'), tile, [cv2.IMWRITE_JPEG_QUALITY, 85])
            else:
                cv2.imwrite(osp.join(folder, name + '.png'), tile)
    return root
