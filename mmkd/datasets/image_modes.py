"""Count the images a dataset converts to RGB when it loads them, and say so once."""
import logging
from collections import Counter
from typing import Dict, List, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log
from PIL import Image

# What OpenCV / mmcv's 3-channel decoding does to each PIL mode.
_CONVERSION: Dict[str, str] = {
    'L': 'grayscale (mode L, copied to 3 channels)',
    '1': 'black-and-white (mode 1, copied to 3 channels)',
    'I;16': '16-bit grayscale (mode I;16, scaled to 8 bits and copied to 3 channels)',
    'I': '32-bit grayscale (mode I, copied to 3 channels)',
    'LA': 'grayscale with alpha (mode LA, alpha dropped, copied to 3 channels)',
    'RGBA': 'RGBA (mode RGBA, alpha dropped)',
    'P': 'palette (mode P, expanded to RGB)',
    'PA': 'palette with alpha (mode PA, expanded to RGB, alpha dropped)',
    'CMYK': 'CMYK (mode CMYK, converted to RGB)',
}
_SHOWN = 3


def image_mode(path: str) -> str:
    """PIL's mode of an image file, read from its header (no decoding)."""
    try:
        with Image.open(path) as img:
            return img.mode
    except OSError:
        return 'RGB'  # unreadable: the loader names the file when it gets there


def report_color_conversions(what: str, paths: Sequence[str]) -> List[str]:
    """Log one warning saying how many of ``paths`` are not 3-channel RGB (grayscale,
    RGBA, palette, ...) and are therefore converted when loaded; nothing if all are RGB.

    Args:
        what (str): The dataset, as the message names it.
        paths (Sequence[str]): Its image files.

    Returns:
        list[str]: The paths that are converted.
    """
    modes = {path: image_mode(path) for path in paths}
    converted = [p for p, mode in modes.items() if mode != 'RGB']
    if converted:
        counts = Counter(modes[p] for p in converted)
        kinds = ', '.join(f'{n} {_CONVERSION.get(mode, f"mode {mode}, converted to RGB")}'
                          for mode, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
        print_log(f'{what}: {len(converted)} of {len(paths)} images are not 3-channel RGB and '
                  f'are converted to RGB when loaded: {kinds}, e.g. {converted[:_SHOWN]}',
                  logger='current', level=logging.WARNING)
    return converted


def decode_image(path: str, flags: int, error: str) -> np.ndarray:
    """``cv2.imdecode`` of the file's bytes (paths with any characters); a file that is empty
    or cannot be decoded raises ``ValueError(error)``."""
    raw = np.fromfile(path, dtype=np.uint8)
    try:
        image = cv2.imdecode(raw, flags) if raw.size else None
    except cv2.error:
        image = None
    if image is None:
        raise ValueError(error)
    return image
