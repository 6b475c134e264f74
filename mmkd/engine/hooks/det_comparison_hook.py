import os
import os.path as osp

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
    """During ``tools/test.py --show-dir DIR``, saves one PNG per test image with the ground
    truth, each model's top box and the ensemble's box (paper B Fig. 3).

    Args:
        out_dir (str): Folder for the pictures (created).
        max_images (int): Stop after this many pictures (0: all). Defaults to 0.
    """

    def __init__(self, out_dir: str, max_images: int = 0):
        self.out_dir, self.max_images, self.saved = out_dir, max_images, 0

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
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
            mmcv.imwrite(picture, osp.join(self.out_dir, f'{name}.png'))
            self.saved += 1

    @staticmethod
    def _gt_boxes(sample) -> np.ndarray:
        """Ground truth in original-image pixels: mmkd's test pipelines load the annotations
        after ``Resize``, so the packed boxes are not rescaled."""
        boxes = sample.gt_instances.bboxes
        boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
        return boxes.cpu().numpy()
