import io
from typing import Optional

import mmcv
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from PIL import Image

from mmkd.registry import TRANSFORMS


def check_complete(img_bytes: bytes, filename: str) -> None:
    """Raise ``ValueError`` naming ``filename`` if the encoded image stops early.

    OpenCV's answer to a truncated file depends on its version: some return None, others
    (libjpeg's "Premature end of JPEG file" is only a warning) return the image with its
    missing part filled in grey, which would then be trained on. Pillow raises on every
    truncated file. JPEGs are decoded at 1/8 scale (``draft``), which still reads every byte
    of the entropy-coded data but costs less than the full decode.
    """
    try:
        with Image.open(io.BytesIO(img_bytes)) as img:
            if img.format == 'JPEG':
                img.draft('RGB', (max(img.width // 8, 1), max(img.height // 8, 1)))
            img.load()
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for broken files
        raise ValueError(f'{filename} cannot be read as an image: it is truncated or corrupt '
                         f'({e}); replace it with an intact copy or remove it') from e


@TRANSFORMS.register_module()
class LoadImageChecked(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same arguments, same output) that refuses broken files
    with an error naming the file: an empty, undecodable or truncated image raises
    ``ValueError`` instead of mmcv's bare ``AssertionError`` (skipped under ``python -O``) or
    a partly grey image. ``ignore_empty=True`` keeps mmcv's meaning: such a sample gives None.
    """

    def _decode(self, filename: str):
        if self.file_client_args is not None:  # mmcv's deprecated spelling, still accepted
            img_bytes = fileio.FileClient.infer_client(self.file_client_args,
                                                       filename).get(filename)
        else:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        if not img_bytes:
            raise ValueError(f'{filename} is empty (0 bytes); replace it with an intact copy or '
                             'remove it')
        try:
            img = mmcv.imfrombytes(img_bytes, flag=self.color_type,
                                   backend=self.imdecode_backend)
        except Exception as e:  # noqa: BLE001  (decoders raise anything; re-raised with the file)
            raise ValueError(f'{filename} cannot be decoded as an image ({e}); replace it with '
                             'an intact copy or remove it') from e
        if img is None:
            raise ValueError(f'{filename} cannot be decoded as an image (corrupt or truncated); '
                             'replace it with an intact copy or remove it')
        check_complete(img_bytes, filename)
        return img

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        try:
            img = self._decode(filename)
        except Exception:
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
