"""A tiny COCO-format box dataset, as an existing mmdet project would have."""
import json
import os
import os.path as osp

import cv2
import numpy as np


def write_coco_boxes(root: str, num_images: int = 8, size: int = 128, seed: int = 0) -> str:
    """Write ``root/images/*.jpg`` (one bright ellipse on noise per image) and
    ``root/annotations.json`` (COCO: images, annotations with xywh boxes, one category
    ``polyp``). Returns the annotation file path."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        img = rng.integers(40, 90, size=(size, size, 3), dtype=np.uint8)
        w, h = rng.integers(size // 5, size // 2, size=2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        cv2.ellipse(img, (int(x + w // 2), int(y + h // 2)), (int(w // 2), int(h // 2)), 0, 0,
                    360, (90, 110, 230), -1)
        name = f'{i:04d}.jpg'
        cv2.imwrite(osp.join(root, 'images', name), img)
        images.append(dict(id=i, file_name=name, width=size, height=size))
        annotations.append(dict(id=i, image_id=i, category_id=1, iscrowd=0,
                                bbox=[int(x), int(y), int(w), int(h)], area=int(w * h)))
    path = osp.join(root, 'annotations.json')
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=1, name='polyp')]), f)
    return path
