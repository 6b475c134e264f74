"""The pre-trained / from-scratch switch and the list of weight files to pre-fill offline."""
import glob
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmkd.utils import from_scratch, pretrained_files

REAL_DATA_CONFIGS = sorted(glob.glob('configs/kvasir*.py') + glob.glob('configs/kvasir/*.py') +
                           glob.glob('configs/kdml/*.py'))


def model_pretrained_flags(model) -> list:
    found = []

    def visit(node):
        if isinstance(node, dict):
            if 'pretrained' in node:
                found.append(node['pretrained'])
            for v in node.values():
                visit(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                visit(v)

    visit(model)
    return found


@pytest.mark.parametrize('path', REAL_DATA_CONFIGS)
def test_real_dataset_configs_start_from_imagenet(path):
    flags = model_pretrained_flags(Config.fromfile(path).model.to_dict())
    assert flags and all(flags), f'{path}: {flags}'


def test_from_scratch_switches_every_model_and_names_the_keys():
    cfg = Config.fromfile('configs/kvasir_kdml_v3.py')
    switched = from_scratch(cfg)
    assert switched == ['model.teacher.backbone.pretrained',
                        'model.students[0].backbone.pretrained',
                        'model.students[1].backbone.pretrained']
    assert model_pretrained_flags(cfg.model.to_dict()) == [False] * 3
    assert from_scratch(cfg) == []  # idempotent


def test_from_scratch_removes_pretrained_init_cfg_inside_mmdet_bases():
    cfg = dict(model=dict(type='DetKDMLDistiller', students=[
        dict(base='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
             neck=dict(init_cfg=[dict(type='Xavier', layer='Conv2d'),
                                 dict(type='Pretrained', checkpoint='x.pth')]))]))
    assert from_scratch(cfg) == ['model.students[0].backbone.init_cfg',
                                 'model.students[0].neck.init_cfg']
    student = cfg['model']['students'][0]
    assert student['type'] == 'RetinaNet' and student['backbone']['init_cfg'] is None
    assert student['neck']['init_cfg'] == dict(type='Xavier', layer='Conv2d')


def test_from_scratch_keeps_offline_teacher_checkpoint():
    cfg = Config.fromfile('configs/kvasir/kvasir_kdml-offline_v3.py')
    ckpt = cfg.model.teacher_ckpt
    from_scratch(cfg)
    assert cfg.model.teacher_ckpt == ckpt


def test_pretrained_files_lists_cache_paths(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    rows = pretrained_files(Config.fromfile('configs/kvasir_kdml_v1.py'))
    cache = tmp_path / 'hub' / 'checkpoints'
    assert [os.path.basename(r['url']) for r in rows] == [
        'resnet152-f82ba261.pth', 'resnet50-11ad3fa6.pth', 'resnet34-b627a593.pth']
    assert [r['path'] for r in rows] == [str(cache / os.path.basename(r['url'])) for r in rows]
    assert {r['present'] for r in rows} == {'no'}
    os.makedirs(cache)
    (cache / 'resnet50-11ad3fa6.pth').write_bytes(b'')
    assert [r['present'] for r in pretrained_files(
        Config.fromfile('configs/kvasir_kdml_v1.py'))] == ['no', 'yes', 'no']


def test_train_tool_from_scratch_flag_reaches_the_config(tmp_path):
    code = ('import sys; from mmkd.utils import add_run_arguments, load_run_config;'
            'import argparse; p = argparse.ArgumentParser(); p.add_argument("config");'
            'add_run_arguments(p); cfg = load_run_config(p.parse_args(sys.argv[1:]));'
            'print(cfg.model.students[1].backbone.pretrained)')
    out = subprocess.run([sys.executable, '-c', code, 'configs/kvasir_kdml_v3.py',
                          '--from-scratch', '--work-dir', str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == 'False'
    assert 'random initialisation instead of' in out.stdout + out.stderr
