"""Per-epoch curves of seeded runs (mmkd.visualization.seed_curves) on tiny fake work dirs."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmkd.visualization.seed_curves import epoch_curve, plot_seed_curves, seed_curve


def fake_work_dir(root, name, errors, stamp='20261204_130000', every=2):
    """A work dir whose scalars.json has a training row per epoch and a validation row every
    ``every`` epochs with ``exit4/top1_err`` = ``errors[i]`` (the i-th validation)."""
    folder = osp.join(root, name, stamp, 'vis_data')
    os.makedirs(folder)
    with open(osp.join(folder, 'scalars.json'), 'w') as f:
        for i, err in enumerate(errors):
            epoch = (i + 1) * every
            f.write(json.dumps(dict(lr=0.1, loss=1.0, epoch=epoch, iter=epoch * 10,
                                    step=epoch * 10)) + '\n')
            f.write(json.dumps({'exit4/top1_err': err, 'exit1/top1_err': 90.0,
                                'step': epoch}) + '\n')
    return osp.join(root, name)


def test_seed_curve_mean_and_std_over_runs(tmp_path):
    a = fake_work_dir(tmp_path, 'a', [30.0, 20.0, 18.0])
    b = fake_work_dir(tmp_path, 'b', [34.0, 22.0, 18.0])
    assert epoch_curve(a, 'exit4/top1_err') == {2: 30.0, 4: 20.0, 6: 18.0}
    epochs, mean, std = seed_curve([a, b], 'exit4/top1_err')
    assert epochs.tolist() == [2, 4, 6]
    assert mean.tolist() == [32.0, 21.0, 18.0]
    # sample std (ddof=1) of (30, 34) is 2 * sqrt(2)
    np.testing.assert_allclose(std, [2 * np.sqrt(2), np.sqrt(2), 0.0])
    # a run that validated fewer epochs (killed half-way): only the shared epochs
    c = fake_work_dir(tmp_path, 'c', [40.0])
    epochs, mean, _ = seed_curve([a, c], 'exit4/top1_err')
    assert epochs.tolist() == [2] and mean.tolist() == [35.0]
    _, _, std = seed_curve([a], 'exit4/top1_err')
    assert std.tolist() == [0.0, 0.0, 0.0]


def test_plot_seed_curves_png(tmp_path):
    runs = {'baseline': [fake_work_dir(tmp_path, f'b{s}', [30.0 + s, 20.0, 18.0 - s])
                         for s in range(3)],
            '+ PS-KD': [fake_work_dir(tmp_path, 'p0', [31.0, 19.0, 16.0])],
            '+ BYOT': []}  # no finished run: left out
    path = plot_seed_curves(runs, tmp_path / 'figs' / 'curves.png')
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (500, 800, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10
    with pytest.raises(ValueError, match='no variant has a finished run'):
        plot_seed_curves({'+ BYOT': []}, tmp_path / 'none.png')
