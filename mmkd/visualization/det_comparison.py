"""Pictures of ground truth, each model's top box and the ensemble's box (paper B Fig. 3)."""
from typing import Dict, Optional, Sequence

import cv2
import numpy as np

# BGR colours: ground truth green, ensemble red, then one colour per model.
GT_COLOUR = (0, 200, 0)
ENSEMBLE_COLOUR = (0, 0, 255)
MODEL_COLOURS = ((255, 160, 0), (255, 0, 200), (0, 200, 255), (160, 80, 255), (255, 255, 0))


def draw_detection_comparison(image: np.ndarray, gt_boxes: np.ndarray,
                              model_boxes: Dict[str, Optional[Sequence[float]]],
                              model_scores: Optional[Dict[str, float]] = None) -> np.ndarray:
    """Draw on a copy of ``image`` (H, W, 3, BGR uint8) every ground-truth box (green) and
    each model's top-scoring box (one colour per model, the ensemble in red, thicker), with a
    legend. ``model_boxes[name]`` is ``(x1, y1, x2, y2)`` or None when the model found nothing.
    """
    canvas = image.copy()
    thick = max(2, round(max(image.shape[:2]) / 200))
    for box in np.asarray(gt_boxes, dtype=float).reshape(-1, 4):
        _rect(canvas, box, GT_COLOUR, thick)
    legend = [('ground truth', GT_COLOUR)]
    others = iter(MODEL_COLOURS)
    for name, box in model_boxes.items():
        colour = ENSEMBLE_COLOUR if name == 'ensemble' else next(others, (255, 255, 255))
        score = (model_scores or {}).get(name)
        label = name if score is None else f'{name} {score:.2f}'
        legend.append((label if box is not None else f'{name}: none', colour))
        if box is not None:
            _rect(canvas, box, colour, thick * (2 if name == 'ensemble' else 1))
    for i, (text, colour) in enumerate(legend):
        y = 18 + 18 * i
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(canvas, (3, y - h - 4), (9 + w, y + 4), (0, 0, 0), -1)
        cv2.putText(canvas, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    return canvas


def _rect(canvas, box, colour, thickness):
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
