"""tools/test.py with mmdet's flags (--out, --show, --show-dir, --wait-time, --tta) and a
progress bar; distiller checkpoints given to a student config; forgotten `mmkd.` prefixes;
TensorBoard curves."""
import argparse
import glob
import os
import pickle
import re
import runpy
import sys

import mmcv
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from mmkd.registry import DATASETS, MODELS
from mmkd.testing import scratch_config, tiny_detector, write_kvasir_seg
from mmkd.utils import add_run_arguments, export_students, load_run_config, set_data_root

MODEL_NAMES = {'teacher', 'student0', 'student1', 'ensemble'}


pytestmark = pytest.mark.usefixtures('one_thread')  # tests/test_integration/conftest.py


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A tiny Kvasir KD+ML config written to a file, its checkpoint (initialised weights,
    low-score boxes kept) and its exported students."""
    tmp = tmp_path_factory.mktemp('flags')
    root = write_kvasir_seg(str(tmp / 'kvasir'), num_images=6, seed=3)
    cfg = scratch_config('configs/kvasir_kdml_v3.py')
    set_data_root(cfg, root)
    keep = dict(nms_pre=100, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.6),
                max_per_img=10)
    cfg.model.teacher = dict(tiny_detector('gfl', 16), test_cfg=keep)
    cfg.model.students = [dict(tiny_detector('gfl', 16), test_cfg=keep)] * 2
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=2, num_workers=0, persistent_workers=False)
        for step in cfg[loader].dataset.pipeline:
            if step.type == 'Resize':
                step.scale = (96, 96)
    cfg.train_cfg.max_epochs = 1
    cfg.randomness = dict(seed=0)
    config = str(tmp / 'kdml.py')
    cfg.dump(config)
    torch.manual_seed(0)
    distiller = MODELS.build(cfg.model)
    distiller.init_weights()
    ckpt = str(tmp / 'kdml.pth')
    torch.save({'state_dict': distiller.state_dict(), 'meta': {}}, ckpt)
    exported = export_students(Config.fromfile(config), ckpt, str(tmp / 'export'))
    num_test = len(DATASETS.build(cfg.test_dataloader.dataset))
    return dict(config=config, ckpt=ckpt, exported=exported, tmp=tmp, num_test=num_test)


def run_tool(run, monkeypatch, *flags):
    monkeypatch.setattr(sys, 'argv', ['tools/test.py', run['config'], run['ckpt'],
                                      '--work-dir', str(run['tmp'] / 'work'), *flags])
    runpy.run_path('tools/test.py', run_name='__main__')


def test_out_pickles_every_models_predictions_and_a_progress_bar_prints(run, monkeypatch,
                                                                        capsys):
    out = str(run['tmp'] / 'preds.pkl')
    run_tool(run, monkeypatch, '--out', out)
    printed = capsys.readouterr().out
    n = run['num_test']
    assert re.search(rf'\] {n}/{n}, [0-9.]+ task/s, elapsed: ', printed)  # ProgressBar
    with open(out, 'rb') as f:
        samples = pickle.load(f)
    assert len(samples) == n
    for sample in samples:
        assert 'gt_instances' not in sample
        assert set(sample['model_preds']) == MODEL_NAMES
        for preds in sample['model_preds'].values():
            assert set(preds) == {'bboxes', 'scores', 'labels'}
            assert isinstance(preds['bboxes'], torch.Tensor) and preds['bboxes'].shape[1] == 4
        torch.testing.assert_close(sample['pred_instances']['bboxes'],
                                   sample['model_preds']['ensemble']['bboxes'])


def test_show_show_dir_and_wait_time(run, monkeypatch):
    shown = []
    monkeypatch.setattr(mmcv, 'imshow', lambda img, win_name='', wait_time=0: shown.append(
        (img.shape, win_name, wait_time)))
    pictures = run['tmp'] / 'pictures'
    run_tool(run, monkeypatch, '--show', '--wait-time', '0.5', '--show-dir', str(pictures))
    files = sorted(os.listdir(pictures))
    assert len(shown) == len(files) == run['num_test']
    assert {w for _, _, w in shown} == {500}  # mmcv.imshow waits in ms
    assert sorted(f'{name}.png' for _, name, _ in shown) == files


def test_tta_flips_back_and_merges_every_model(run, monkeypatch, capsys):
    out = str(run['tmp'] / 'tta.pkl')
    run_tool(run, monkeypatch, '--tta', '--out', out)
    table = capsys.readouterr().out
    assert all(re.search(rf'^{m} +\|', table, re.M) for m in MODEL_NAMES)
    with open(out, 'rb') as f:
        samples = pickle.load(f)
    assert len(samples) == run['num_test']
    for sample in samples:
        assert sample['flip'] is False  # merged onto the unflipped view
        assert set(sample['model_preds']) == MODEL_NAMES


def test_tta_model_maps_each_models_boxes_back_before_merging():
    from mmkd.models.test_time_augs import MultiModelDetTTAModel
    tta = MultiModelDetTTAModel(module=dict(type='mmkd.DetKDMLDistiller', students=[
        tiny_detector('gfl', 8)], ml_weight=0), tta_cfg=ConfigDict(
            nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))

    def view(flip, boxes, scores):
        sample = DetDataSample(metainfo=dict(ori_shape=(100, 200), flip=flip,
                                             flip_direction='horizontal' if flip else None))
        inst = InstanceData(bboxes=torch.tensor(boxes), scores=torch.tensor(scores),
                            labels=torch.zeros(len(scores), dtype=torch.long))
        sample.pred_instances = inst
        sample.model_preds = {'teacher': inst, 'student0': inst.clone()}
        return sample

    # The flipped view sees the same box at x' = 200 - x, plus one box only it finds.
    plain = view(False, [[150., 20., 190., 60.]], [0.9])
    flipped = view(True, [[10., 20., 50., 60.], [0., 0., 20., 20.]], [0.8, 0.7])
    merged = tta.merge_preds([[flipped, plain]])[0]
    assert merged.metainfo['flip'] is False
    for inst in [merged.pred_instances, *merged.model_preds.values()]:
        torch.testing.assert_close(inst.bboxes, torch.tensor([[150., 20., 190., 60.],
                                                              [180., 0., 200., 20.]]))
        torch.testing.assert_close(inst.scores, torch.tensor([0.9, 0.7]))


def test_student_config_with_a_distiller_checkpoint_names_the_export(run, monkeypatch):
    student_cfg, _ = run['exported'][0]
    monkeypatch.setattr(sys, 'argv', ['tools/test.py', student_cfg, run['ckpt'],
                                      '--work-dir', str(run['tmp'] / 'wrong')])
    with pytest.raises(ValueError) as error:
        runpy.run_path('tools/test.py', run_name='__main__')
    assert str(error.value).endswith(
        "It is a distiller checkpoint (teacher and students in one file, keys 'teacher.*', "
        "'students.<k>.*'): export the students first, python tools/export_students.py "
        'DISTILLER_CONFIG CHECKPOINT --out-dir DIR, then test DIR/student0.py with '
        "DIR/student0.pth (mmdet's init_detector needs those exported files too).")


def run_args(*argv):
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    add_run_arguments(parser)
    return parser.parse_args(argv)


def test_forgotten_mmkd_prefix_is_named_with_the_fix(tmp_path):
    config = tmp_path / 'theirs.py'
    config.write_text(
        "_base_ = 'mmdet::_base_/default_runtime.py'\n"
        "custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)\n"
        "detector = dict(base='mmdet::gfl/gfl_r50_fpn_1x_coco.py', backbone=dict(\n"
        "    _delete_=True, type='TorchvisionBackbone', arch='resnet18'))\n"
        "model = dict(type='mmkd.DetKDMLDistiller', teacher=detector, students=[detector])\n"
        "custom_hooks = [dict(type='PSKDMemoryHook')]\n")
    with pytest.raises(ValueError) as error:
        load_run_config(run_args(str(config)))
    assert str(error.value) == (
        "model.teacher.backbone.type = 'TorchvisionBackbone', model.students[0].backbone.type"
        " = 'TorchvisionBackbone', custom_hooks[0].type = 'PSKDMemoryHook': mmkd types in a "
        "config whose scope is 'mmdet', where mmengine does not find them unprefixed: write "
        "type='mmkd.TorchvisionBackbone' (with scope 'mmdet' every mmkd type needs the "
        "prefix, nested ones too), or set default_scope='mmkd'")


def test_tensorboard_writes_an_events_file(run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    work = tmp_path / 'tb'
    cfg = load_run_config(run_args(run['config'], '--tensorboard', '--work-dir', str(work),
                                   '--cfg-options', 'train_cfg.val_interval=5'))
    assert cfg.visualizer.vis_backends[-1] == dict(type='TensorboardVisBackend')
    Runner.from_cfg(cfg).train()
    events = glob.glob(str(work / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1
    accumulator = EventAccumulator(events[0])
    accumulator.Reload()
    assert {'loss', 'student0.loss_kd_box', 'teacher.loss_cls'} <= set(
        accumulator.Tags()['scalars'])
