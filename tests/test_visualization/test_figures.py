"""Figures of a work dir (mmkd.visualization.figures, tools/plot_figures.py) and the
predictions file of MultiModelClsMetric(save_predictions=...)."""
import importlib.util
import json
import os
import os.path as osp
import time

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.evaluation import MultiModelClsMetric
from mmkd.evaluation.functional import expected_calibration_error
from mmkd.testing import scratch_config, tiny_detector, write_kvasir_seg, write_msi_tiles
from mmkd.testing.torchrun import REPO_ROOT
from mmkd.utils import set_data_root
from mmkd.visualization.figures import (FIGURE_PIXELS, find_scalars_files, last_metrics,
                                        plot_accuracy_bars, plot_detection_grid,
                                        plot_reliability_diagram, plot_training_curves,
                                        read_scalars, reliability_bins)

# (width, height) in pixels, as documented in mmkd/visualization/figures.py
SIZES = dict(training_curves=(1600, 1200), reliability_diagram=(600, 700),
             accuracy_bars=(800, 500), detection_grid=(1200, 800))
CLS_MODELS = ('teacher', 'student0', 'student1', 'ensemble')


def assert_png(path, kind):
    """A PNG of the documented size that is not one flat colour."""
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    width, height = SIZES[kind]
    assert image is not None and image.shape == (height, width, 3), (path, image.shape)
    colours = np.unique(image.reshape(-1, 3).astype(np.int32) @ np.array([1 << 16, 1 << 8, 1]))
    assert len(colours) > 10, f'{path} is (almost) flat'


def random_probs(n=400, c=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n, ), generator=g)
    logits = 2 * torch.randn(n, c, generator=g)
    logits[torch.arange(n // 2), labels[:n // 2]] += 4  # half of them mostly right
    return logits.softmax(1), labels


def write_scalars(path, rows):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in rows)


def train_rows(iters, epoch_of, keys=('exit1.loss_cls', 'exit2.loss_cls', 'exit2.loss_kd')):
    return [dict(lr=0.1, loss=5.0 / i, **{k: 1.0 / i for k in keys}, epoch=epoch_of(i), iter=i,
                 step=i) for i in iters]


def val_row(epoch, models=('exit1', 'exit2', 'ensemble'), tag=0.0):
    return dict({f'{m}/{k}': 10.0 * epoch + j + tag for j, m in enumerate(models)
                 for k in ('top1_acc', 'nll')}, step=epoch)


def test_documented_sizes():
    assert FIGURE_PIXELS == SIZES


class TestHandMade:

    def test_reliability_bins_are_the_ece_bins(self):
        probs, labels = random_probs()
        # float32 0.2 (0.2000000030) belongs to (0.2, 0.3] and float32 0.9 (0.8999999762) to
        # (0.8, 0.9], as the reference's float64 comparison puts them
        probs[0] = torch.tensor([0.2] * 5 + [0.0] * 5)
        probs[1] = torch.tensor([0.9, 0.1] + [0.0] * 8)
        stats = reliability_bins(probs, labels, 10)
        assert stats['count'].sum() == len(labels)
        filled = stats['count'] > 0
        ece = 100 * np.sum(stats['count'][filled] / len(labels) *
                           np.abs(stats['accuracy'][filled] - stats['confidence'][filled]))
        assert ece == pytest.approx(expected_calibration_error(probs, labels, 10), abs=1e-9)
        assert np.isnan(stats['accuracy'][~filled]).all()

    def test_reliability_diagram(self, tmp_path):
        probs, labels = random_probs()
        out = plot_reliability_diagram(probs, labels, tmp_path / 'sub' / 'rel.png',
                                       num_bins=15, title='exit4')
        assert out == str(tmp_path / 'sub' / 'rel.png')
        assert_png(out, 'reliability_diagram')
        # numpy input, one class always right (a single filled bin)
        out = plot_reliability_diagram(np.eye(3)[[0, 1, 2]], np.array([0, 1, 2]),
                                       tmp_path / 'one.png')
        assert_png(out, 'reliability_diagram')

    def test_accuracy_bars_exits_and_metric_choice(self, tmp_path):
        metrics = {f'{m}/{k}': v for m, v in zip(['exit1', 'exit2', 'exit3', 'exit4',
                                                  'ensemble'], [67.9, 75.2, 78.9, 79.8, 79.7])
                   for k in ('top1_acc', 'nll')}
        assert_png(plot_accuracy_bars(metrics, tmp_path / 'acc.png'), 'accuracy_bars')
        assert_png(plot_accuracy_bars(metrics, tmp_path / 'nll.png', metric='nll'),
                   'accuracy_bars')
        with pytest.raises(ValueError, match=r"no \"\{model\}/mIoU\".*'nll', 'top1_acc'"):
            plot_accuracy_bars(metrics, tmp_path / 'x.png', metric='mIoU')

    def test_resumed_runs_are_concatenated(self, tmp_path):
        # run A: epochs 1-3 of 2 iterations each, stopped after epoch 3; run B resumed from
        # epoch_2.pth: it logs iterations 5-6 and epoch 3 again, which replace A's.
        epoch_of = lambda i: (i + 1) // 2  # noqa: E731
        a = tmp_path / 'work' / '20250101_000000' / 'vis_data' / 'scalars.json'
        b = tmp_path / 'work' / '20250102_000000' / 'vis_data' / 'scalars.json'
        write_scalars(str(a), train_rows([1, 2], epoch_of) + [val_row(1)] +
                      train_rows([3, 4], epoch_of) + [val_row(2)] +
                      train_rows([5, 6], epoch_of) + [val_row(3)])
        write_scalars(str(b), train_rows([5, 6], epoch_of) + [val_row(3, tag=0.5)])
        # a test-only run (tools/test.py) leaves no scalars.json
        os.makedirs(tmp_path / 'work' / '20250103_000000')
        paths = find_scalars_files(tmp_path / 'work')
        assert paths == [str(a), str(b)]
        train, val = read_scalars(paths)
        assert [r['iter'] for r in train] == [1, 2, 3, 4, 5, 6]
        assert [r['step'] for r in val] == [1, 2, 3]
        assert val[-1]['ensemble/nll'] == 32.5  # B's epoch 3
        # a later run from scratch replaces everything before it
        write_scalars(str(b), train_rows([1, 2], epoch_of) + [val_row(1, tag=0.5)])
        train, val = read_scalars(paths)
        assert [r['iter'] for r in train] == [1, 2] and len(val) == 1
        # two runs appended to one file (one process, shared visualizer) likewise
        write_scalars(str(a), train_rows([1, 2, 3], epoch_of) + train_rows([1, 2], epoch_of))
        assert [r['iter'] for r in read_scalars([str(a)])[0]] == [1, 2]

    def test_training_curves_exits(self, tmp_path):
        path = str(tmp_path / '20250101_000000' / 'vis_data' / 'scalars.json')
        epoch_of = lambda i: (i + 9) // 10  # noqa: E731
        write_scalars(path, train_rows(range(1, 11), epoch_of) + [val_row(1)] +
                      train_rows(range(11, 21), epoch_of) + [val_row(2)])
        assert_png(plot_training_curves(path, tmp_path / 'curves.png'), 'training_curves')
        assert last_metrics(tmp_path)['exit2/top1_acc'] == 21.0
        # a file with nothing to plot
        write_scalars(path, [dict(step=1, time=0.1)])
        with pytest.raises(ValueError, match='no loss or validation metric'):
            plot_training_curves([path], tmp_path / 'none.png')

    def test_detection_grid(self, tmp_path):
        paths = []
        for i in range(8):
            image = np.full((60 + 10 * i, 80, 3), 30 * i, np.uint8)
            cv2.circle(image, (40, 30), 20, (0, 0, 255), -1)
            paths.append(str(tmp_path / f'{i}.png'))
            cv2.imwrite(paths[-1], image)
        assert_png(plot_detection_grid(paths, tmp_path / 'grid.png'), 'detection_grid')
        assert_png(plot_detection_grid(paths[:1], tmp_path / 'one.png'), 'detection_grid')
        with pytest.raises(ValueError, match='no image'):
            plot_detection_grid([], tmp_path / 'none.png')


class TestSavePredictions:

    def test_writes_deduplicated_probs_and_labels(self, tmp_path):
        probs, labels = random_probs(n=6, c=3)
        out = tmp_path / 'deep' / 'preds.pt'
        metric = MultiModelClsMetric(topk=(1, ), save_predictions=str(out))

        def batch(rows):
            rows = torch.tensor(rows)
            return dict(sample_idx=rows, gt_label=labels[rows],
                        probs=dict(teacher=probs[rows], ensemble=probs[rows].flip(1)))

        # as DDP padding does: samples 0 and 1 repeated in the last batch
        metric.process(None, [batch([0, 1, 2, 3])])
        metric.process(None, [batch([4, 5, 0, 1])])
        metrics = metric.evaluate(size=6)
        saved = safe_torch_load(out)
        assert list(saved['probs']) == ['teacher', 'ensemble']
        torch.testing.assert_close(saved['sample_idx'], torch.arange(6))
        torch.testing.assert_close(saved['labels'], labels)
        torch.testing.assert_close(saved['probs']['teacher'], probs)
        torch.testing.assert_close(saved['probs']['ensemble'], probs.flip(1))
        assert metrics['teacher/ece'] == pytest.approx(
            expected_calibration_error(saved['probs']['teacher'], saved['labels']))

    def test_off_by_default(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        probs, labels = random_probs(n=4, c=3)
        metric = MultiModelClsMetric()
        assert metric.save_predictions is None
        metric.process(None, [dict(sample_idx=torch.arange(4), gt_label=labels,
                                   probs=dict(teacher=probs))])
        metric.evaluate(size=4)
        assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ real tiny runs
@pytest.fixture
def one_thread():
    """Tiny nets train faster on one thread, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_kdml_cfg(data_root, work_dir, name):
    """The paper-B MSI config with tiny CIFAR ResNets (as tests/test_integration)."""
    cfg = scratch_config(osp.join(REPO_ROOT, 'configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py'))
    set_data_root(cfg, data_root)
    tiny = dict(type='CIFARResNet', depth=18, num_stages=2)
    cfg.model.teacher.backbone = dict(tiny, base_channels=16)
    for student in cfg.model.students:
        student.backbone = dict(tiny, base_channels=8)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=8, num_workers=0, persistent_workers=False)
        cfg[name].dataset.img_size = 32
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = unique_name(name)
    return cfg


def unique_name(name):
    """mmdet's configs name their visualizer 'visualizer': a runner in a process that already
    built one would log into that one's folder. A fresh name gives a run its own vis_data."""
    return f'test_figures_{name}_{time.time_ns()}'


def load_plot_figures():
    spec = importlib.util.spec_from_file_location(
        'plot_figures', osp.join(REPO_ROOT, 'tools', 'plot_figures.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_on_trained_resumed_and_tested_kdml_work_dir(tmp_path, one_thread):
    """A tiny KD+ML run of 1 epoch, resumed for epoch 2 and tested with the predictions
    saved, then tools/plot_figures.py's main(): every figure of the classification path."""
    data_root = str(tmp_path / 'msi')
    write_msi_tiles(data_root, layout='kaggle', num_patients=6, tiles_per_patient=4,
                    img_size=32)
    work_dir = str(tmp_path / 'work')
    Runner.from_cfg(tiny_kdml_cfg(data_root, work_dir, 'first')).train()
    time.sleep(1.0)  # a run's folder is its start time in seconds
    cfg = tiny_kdml_cfg(data_root, work_dir, 'resumed')
    cfg.train_cfg.max_epochs, cfg.resume = 2, True
    preds = str(tmp_path / 'preds' / 'test.pt')
    cfg.test_evaluator.save_predictions = preds
    runner = Runner.from_cfg(cfg)
    runner.train()
    test_metrics = runner.test()
    assert last_metrics(work_dir) == pytest.approx(test_metrics)

    scalars = find_scalars_files(work_dir)
    assert len(scalars) == 2
    train, val = read_scalars(scalars)
    iters = [r['iter'] for r in train]
    assert iters == list(range(1, len(iters) + 1)) and len(iters) == 6  # 3 per epoch
    assert [r['step'] for r in val] == [1, 2]
    with open(scalars[1]) as f:  # the second run resumed: it did not train epoch 1 again
        assert min(json.loads(line).get('iter', 99) for line in f) == 4

    out_dir = str(tmp_path / 'figures')
    load_plot_figures().main([work_dir, '--predictions', preds, '--out-dir', out_dir])
    assert sorted(os.listdir(out_dir)) == sorted(
        ['training_curves.png', 'accuracy_bars.png'] +
        [f'reliability_{m}.png' for m in CLS_MODELS])
    assert_png(osp.join(out_dir, 'training_curves.png'), 'training_curves')
    assert_png(osp.join(out_dir, 'accuracy_bars.png'), 'accuracy_bars')
    for model in CLS_MODELS:
        assert_png(osp.join(out_dir, f'reliability_{model}.png'), 'reliability_diagram')
    saved = safe_torch_load(preds)
    assert list(saved['probs']) == list(CLS_MODELS)
    assert saved['probs']['ensemble'].shape == (len(saved['labels']), 2)


def test_detection_work_dir_with_pictures(tmp_path, one_thread):
    """A Kvasir KD+ML run with tiny detectors, tested with the --show-dir hook, then the
    tool's main(): training curves, mIoU bars of the test metrics and the picture grid."""
    data_root = str(tmp_path / 'kvasir')
    write_kvasir_seg(data_root, num_images=10, seed=1, img_size_range=((120, 160), (150, 200)))
    cfg = scratch_config(osp.join(REPO_ROOT, 'configs/kvasir_kdml_v3.py'))
    cfg.model.teacher = tiny_detector('gfl', 16)
    cfg.model.students = [tiny_detector('gfl', 8), tiny_detector('gfl', 8)]
    set_data_root(cfg, data_root)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=2, num_workers=0, persistent_workers=False)
        for step in cfg[name].dataset.pipeline:
            if step.type == 'Resize':
                step.scale = (96, 96)
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    cfg.work_dir = work_dir = str(tmp_path / 'work')
    cfg.visualizer.name = unique_name('det')
    pictures = str(tmp_path / 'pictures')
    cfg.custom_hooks = [dict(type='DetComparisonHook', out_dir=pictures)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    test_metrics = runner.test()
    assert last_metrics(work_dir) == pytest.approx(test_metrics)

    out_dir = str(tmp_path / 'figures')
    written = load_plot_figures().main([work_dir, '--detections', pictures,
                                        '--out-dir', out_dir])
    assert [osp.basename(p) for p in written] == [
        'training_curves.png', 'accuracy_bars.png', 'detections.png']
    assert_png(written[0], 'training_curves')
    assert_png(written[1], 'accuracy_bars')
    assert_png(written[2], 'detection_grid')
