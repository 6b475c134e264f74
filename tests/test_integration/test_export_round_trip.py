"""Exported students as plain models: detection students load in a process that cannot import
mmkd, through mmdet's own init_detector / inference_detector and runner; ResNet students land
on mmdet's ResNet; other backbones say what they still need; classification students load
strictly into torchvision."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision
from mmdet.apis import inference_detector, init_detector
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.export.plain_models import mmdet_resnet, torchvision_note
from mmkd.models.backbones import TorchvisionBackbone
from mmkd.registry import MODELS
from mmkd.testing import scratch_config, tiny_detector, write_kvasir_seg
from mmkd.utils import export_notes, export_students, set_data_root

# Runs in a fresh interpreter (-I: no user site, no PYTHONPATH) in which every import of
# mmkd fails: only mmdet, mmengine and torch can read the exported files.
NO_MMKD = textwrap.dedent('''
    import importlib.abc, json, sys

    class NoMmkd(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == 'mmkd' or name.startswith('mmkd.'):
                raise ImportError(f'{name}: this process must not use mmkd')

    sys.meta_path.insert(0, NoMmkd())
    try:
        import mmkd  # noqa: F401
        sys.exit('mmkd was importable')
    except ImportError:
        pass
    from mmdet.apis import inference_detector, init_detector
    from mmengine.config import Config
    from mmengine.runner import Runner

    config, checkpoint, image, work_dir = sys.argv[1:]
    model = init_detector(config, checkpoint, device='cpu')
    pred = inference_detector(model, image).pred_instances
    cfg = Config.fromfile(config)
    cfg.work_dir, cfg.load_from = work_dir, checkpoint
    metrics = Runner.from_cfg(cfg).test()
    print(json.dumps(dict(classes=list(model.dataset_meta['classes']),
                          bboxes=pred.bboxes.tolist(), scores=pred.scores.tolist(),
                          labels=pred.labels.tolist(), metrics=metrics,
                          mmkd_loaded=sorted(m for m in sys.modules if m.startswith('mmkd')))))
''')


def torchvision_gfl(arch, channels):
    """A GFL detector on a TorchvisionBackbone (the Kvasir configs' students), shrunk (64
    channels: GN's 32 groups need 2 values each on the 1-px stride-128 map of one image)."""
    det = tiny_detector('gfl', 16)
    det['backbone'] = dict(_delete_=True, type='TorchvisionBackbone', arch=arch,
                           out_indices=(1, 2, 3))
    det['neck']['in_channels'] = channels
    det['test_cfg'] = dict(nms_pre=100, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.6),
                           max_per_img=20)  # random weights: keep low-score boxes
    return det


pytestmark = pytest.mark.usefixtures('one_thread')  # tests/test_integration/conftest.py


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('export')
    root = write_kvasir_seg(str(tmp / 'kvasir'), num_images=6, seed=2)
    cfg = scratch_config('configs/kvasir_kdml_v3.py')
    set_data_root(cfg, root)
    cfg.model.teacher = tiny_detector('gfl', 16)
    cfg.model.students = [torchvision_gfl('resnet18', [128, 256, 512]),
                          torchvision_gfl('efficientnet_b0', [40, 112, 1280])]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=2, num_workers=0, persistent_workers=False)
        for step in cfg[loader].dataset.pipeline:
            if step.type == 'Resize':
                step.scale = (96, 96)
    torch.manual_seed(0)
    distiller = MODELS.build(cfg.model)
    distiller.init_weights()
    ckpt = str(tmp / 'distiller.pth')
    torch.save({'state_dict': distiller.state_dict(), 'meta': {}}, ckpt)
    written = export_students(cfg, ckpt, str(tmp / 'out'))
    distiller.cfg = cfg  # what mmdet's inference_detector reads
    image = osp.join(root, 'images', sorted(os.listdir(osp.join(root, 'images')))[0])
    return dict(cfg=cfg, ckpt=ckpt, written=written, distiller=distiller.eval(),
                image=image, tmp=tmp)


def test_exported_config_is_plain_mmdet(exported):
    cfg_path, ckpt_path = exported['written'][0]
    plain = Config.fromfile(cfg_path)
    assert plain.default_scope == 'mmdet' and 'custom_imports' not in plain
    assert plain.model.type == 'GFL' and plain.model.backbone.type == 'ResNet'
    assert plain.test_dataloader.dataset.type == 'CocoDataset'
    assert plain.test_dataloader.dataset.pipeline[0].type == 'LoadImageFromFile'
    assert plain.test_evaluator.type == 'CocoMetric'
    meta = safe_torch_load(ckpt_path)['meta']
    assert meta['dataset_meta']['classes'] == ('polyp', )


def test_round_trip_without_mmkd(exported, tmp_path):
    cfg_path, ckpt_path = exported['written'][0]
    script = tmp_path / 'no_mmkd.py'
    script.write_text(NO_MMKD)
    run = subprocess.run([sys.executable, '-I', str(script), cfg_path, ckpt_path,
                          exported['image'], str(tmp_path / 'work')],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert run.returncode == 0, run.stderr[-6000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out['mmkd_loaded'] == []
    assert out['classes'] == ['polyp']  # not COCO's 'person'
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50'} <= set(out['metrics'])
    with DefaultScope.overwrite_default_scope('mmkd'):
        inside = inference_detector(exported['distiller'], exported['image'])
    own = inside.model_preds['student0']
    assert len(own.bboxes) > 0
    torch.testing.assert_close(torch.tensor(out['bboxes']), own.bboxes, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(torch.tensor(out['scores']), own.scores, atol=1e-5, rtol=1e-4)
    assert out['labels'] == own.labels.tolist()


def test_backbone_mmdet_lacks_keeps_mmkd_and_says_so(exported):
    notes = export_notes(exported['cfg'])
    assert notes[0] == ("student0: plain mmdet (init_detector / inference_detector, mmdet's "
                        'tools/test.py); mmkd not needed')
    assert notes[1] == (
        "student1: backbone TorchvisionBackbone(arch='efficientnet_b0') has no plain mmdet "
        "counterpart (mmdet has no such backbone): student1.py keeps "
        "type='mmkd.TorchvisionBackbone' and custom_imports=dict(imports=['mmkd']), so "
        'loading it needs mmkd installed (pip install -e <mmkd checkout>); everything else '
        'in it is plain mmdet')
    cfg_path, ckpt_path = exported['written'][1]
    plain = Config.fromfile(cfg_path)  # imports mmkd through custom_imports
    assert plain.default_scope == 'mmdet'
    assert plain.model.backbone.type == 'mmkd.TorchvisionBackbone'
    with DefaultScope.overwrite_default_scope('mmdet'):  # init_detector sets mmdet's scope
        model = init_detector(cfg_path, ckpt_path, device='cpu')
        pred = inference_detector(model, exported['image']).pred_instances
    with DefaultScope.overwrite_default_scope('mmkd'):
        inside = inference_detector(exported['distiller'], exported['image'])
    torch.testing.assert_close(pred.bboxes, inside.model_preds['student1'].bboxes,
                               atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize('arch', ['resnet18', 'resnet50'])
def test_torchvision_resnet_equals_mmdet_resnet(arch):
    cfg = dict(type='TorchvisionBackbone', arch=arch, out_indices=(1, 2, 3), frozen_stages=0)
    torch.manual_seed(0)
    ours = TorchvisionBackbone(**{k: v for k, v in cfg.items() if k != 'type'})
    theirs = MMDET_MODELS.build(mmdet_resnet(cfg))
    theirs.load_state_dict(ours.state_dict(), strict=True)  # the names already agree
    frozen = sorted(n for n, p in ours.named_parameters() if not p.requires_grad)
    assert frozen == sorted(n for n, p in theirs.named_parameters() if not p.requires_grad)
    assert frozen and all(n.startswith(('conv1', 'bn1', 'layer1')) for n in frozen)
    x = torch.rand(2, 3, 64, 64)
    for mode in (False, True):  # eval, and train (batch statistics)
        ours.train(mode), theirs.train(mode)
        for a, b in zip(ours(x), theirs(x)):
            assert torch.equal(a, b)


def test_small_input_resnet_has_no_mmdet_counterpart():
    assert mmdet_resnet(dict(type='TorchvisionBackbone', arch='resnet18',
                             small_input=True)) is None


CLASSIFIERS = [('resnet18', 'fc'), ('densenet121', 'classifier'),
               ('efficientnet_b0', 'classifier.1')]


@pytest.mark.parametrize('arch,head', CLASSIFIERS)
def test_classifier_student_loads_strictly_into_torchvision(arch, head, tmp_path):
    student = dict(type='ImageClassifier', num_classes=3,
                   backbone=dict(type='TorchvisionBackbone', arch=arch))
    cfg = Config(dict(model=dict(type='KDMLDistiller', students=[student], ml_weight=0)))
    torch.manual_seed(0)
    distiller = MODELS.build(cfg.model)
    torch.save({'state_dict': distiller.state_dict()}, tmp_path / 'd.pth')
    export_students(cfg, str(tmp_path / 'd.pth'), str(tmp_path / 'out'))
    state = safe_torch_load(tmp_path / 'out' / 'student0_torchvision.pth')
    assert f'{head}.weight' in state and not any(k.startswith('backbone.') for k in state)
    model = getattr(torchvision.models, arch)(num_classes=3)
    model.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), distiller.students[0].eval().logits(x))
    assert export_notes(cfg) == [
        f'student0: student0_torchvision.pth is a state dict of torchvision.models.{arch}'
        '(num_classes=3); load_state_dict(strict=True)']


def test_classifier_without_torchvision_counterpart_says_so():
    for arch, small in (('vgg16', False), ('resnet18', True)):
        note = torchvision_note('student1', dict(
            type='ImageClassifier', num_classes=2,
            backbone=dict(type='TorchvisionBackbone', arch=arch, small_input=small)))
        assert note == (
            f"student1: no torchvision state dict (ImageClassifier on TorchvisionBackbone"
            f"(arch='{arch}', small_input={small}) is not a torchvision.models classifier: "
            'torchvision has ResNet, DenseNet and EfficientNet exactly, at 224-px stems)')
