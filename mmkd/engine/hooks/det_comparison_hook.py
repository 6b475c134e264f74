import os
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
from mmengine.hooks import Hook

from mmkd.registry import HOOKS
from mmkd.visualization.det_comparison import draw_detection_comparison


def _top_box(instances):
    """(box, score) of the highest-scoring detection, or (None, None)."""
    if instances is None or len(instances) == 0:
        return None, None
    best = int(instances.scores.argmax())
    return instances.bboxes[best].tolist(), float(instances.scores[best])


@HOOKS.register_module()
class DetComparisonHook(Hook):
    """During ``tools/test.py --show-dir DIR`` / ``--show``, draws one picture per test image
    with the ground truth, each model's top box and the ensemble's box (paper B Fig. 3), and
    saves it as a PNG in ``out_dir`` and / or shows it in a window.

    Args:
        out_dir (str, optional): Folder for the pictures (created); None saves none.
            Defaults to None.
        max_images (int): Stop after this many pictures (0: all). Defaults to 0.
        show (bool): Show each picture in a window (``mmcv.imshow``). Defaults to False.
        wait_time (float): With ``show``, seconds each picture stays (0: until a key is
            pressed). Defaults to 2.
    """

    def __init__(self, out_dir: Optional[str] = None, max_images: int = 0,
                 show: bool = False, wait_time: float = 2.):
        if out_dir is None and not show:
            raise ValueError('DetComparisonHook needs out_dir (--show-dir) or show=True '
                             '(--show)')
        self.out_dir, self.max_images, self.saved = out_dir, max_images, 0
        self.show, self.wait_time = show, wait_time

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.out_dir:
            os.makedirs(self.out_dir, exist_ok=True)
        for sample in outputs:
            if self.max_images and self.saved >= self.max_images:
                return
            preds = sample.get('model_preds') or {'model': sample.get('pred_instances')}
            tops = {name: _top_box(inst) for name, inst in preds.items()}
            image = mmcv.imread(sample.img_path)
            gt = self._gt_boxes(sample)
            picture = draw_detection_comparison(image, gt, {n: b for n, (b, _) in tops.items()},
                                                {n: s for n, (_, s) in tops.items()})
            name = osp.splitext(osp.basename(sample.img_path))[0]
            if self.out_dir:
                mmcv.imwrite(picture, osp.join(self.out_dir, f'{name}.png'))
            if self.show:
                mmcv.imshow(picture, win_name=name, wait_time=int(self.wait_time * 1000))
            self.saved += 1

    @staticmethod
    def _gt_boxes(sample) -> np.ndarray:
        """Ground truth in original-image pixels: mmkd's test pipelines load the annotations
        after ``Resize``, so the packed boxes are not rescaled."""
        boxes = sample.gt_instances.bboxes
        boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
        return boxes.cpu().numpy()
