"""Up to six detection pictures in one grid."""
import os.path as osp
from typing import Sequence

from .plotting import DETECTION_GRID_SIZE, DPI, PathLike, plt, save_figure


def plot_detection_grid(image_paths: Sequence[PathLike], out_path: PathLike,
                        max_images: int = 6) -> str:
    """Up to ``max_images`` (at most 6) pictures in a 3 x 2 grid, row by row, each titled
    with its file name (1200 x 800 px), e.g. the ``--show-dir`` pictures of ``tools/test.py``
    (ground truth, each model's top box, the ensemble's box).

    Args:
        image_paths: Image files, in the order to show.
        out_path: The PNG to write.
        max_images (int): How many to show, at most 6. Defaults to 6.

    Returns:
        str: ``out_path``.
    """
    import cv2
    paths = list(image_paths)[:min(max_images, 6)]
    if not paths:
        raise ValueError('no image to put in the detection grid')
    fig, axes = plt.subplots(2, 3, figsize=DETECTION_GRID_SIZE, dpi=DPI, layout='constrained')
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, path in zip(axes.flat, paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f'cannot read the image {path}')
        ax.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        ax.set_title(osp.basename(str(path)), fontsize=9)
    return save_figure(fig, out_path)
