"""tools/export_students.py on issue 20's cases: the README's command on a run trained with
--data-root, a folder that holds another export, --overwrite, --data-root / --cfg-options,
a relative --out-dir for a detection student."""
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from mmkd.testing import scratch_config, tiny_detector, write_kvasir_seg
from mmkd.utils import set_data_root


@pytest.fixture(scope='module')
def run(_msi, tmp_path_factory, tiny_cfg, write_cfg, tool):
    """A finished tiny KD + ML run trained with --data-root; its config file names another
    data root (as configs/kdml/*.py name data/msi/). One per module: no test changes it."""
    tmp = tmp_path_factory.mktemp('run')
    config = write_cfg(tiny_cfg(str(tmp / 'not-here'), max_epochs=1), tmp / 'tiny.py')
    tool('train', config, '--work-dir', tmp / 'work', '--data-root', _msi)
    return dict(config=config, ckpt=str(tmp / 'work' / 'epoch_1.pth'), data_root=_msi,
                work=tmp / 'work')


def test_export_reads_the_runs_config_then_test_needs_no_data_root(run, tmp_path, tool,
                                                                     capsys):
    # The README's walk-through: used to stop at "<data root> is not a folder" when the
    # exported student was tested without --data-root.
    out = tmp_path / 'export'
    tool('export_students', run['config'], run['ckpt'], '--out-dir', out)
    printed = capsys.readouterr().out
    assert printed.startswith(f'config: {run["work"]}/tiny.py (the config the run dumped '
                              'beside its checkpoint)')
    exported = Config.fromfile(out / 'student0.py')
    assert exported.test_dataloader.dataset.data_root == run['data_root']
    assert 'work_dir' not in exported
    tool('test', out / 'student0.py', out / 'student0.pth', '--work-dir', tmp_path / 'test')


def test_export_into_a_folder_with_files_is_refused(run, tmp_path, tool):
    # Used to replace student0.pth and leave the other export's files beside it.
    out = tmp_path / 'export'
    out.mkdir()
    (out / 'student2.pth').write_bytes(b'another export')
    with pytest.raises(FileExistsError, match=re.escape(
            f'--out-dir {out} is not empty (student2.pth): exporting into it would mix this '
            'export with what is there. Pick a new folder, or pass --overwrite to replace it '
            'whole.')):
        tool('export_students', run['config'], run['ckpt'], '--out-dir', out)
    assert os.listdir(out) == ['student2.pth']


def test_overwrite_replaces_the_folder_whole(run, tmp_path, tool):
    out = tmp_path / 'export'
    out.mkdir()
    (out / 'student2.pth').write_bytes(b'another export')
    tool('export_students', run['config'], run['ckpt'], '--out-dir', out, '--overwrite')
    assert sorted(os.listdir(out)) == ['student0.pth', 'student0.pth.sha256', 'student0.py',
                                       'student1.pth', 'student1.pth.sha256', 'student1.py']


def test_overwrite_never_removes_what_is_exported(run, tool):
    work = osp.dirname(run['ckpt'])
    with pytest.raises(ValueError, match=re.escape(f'--overwrite would remove {work} whole')):
        tool('export_students', run['config'], run['ckpt'], '--out-dir', work, '--overwrite')
    assert osp.isfile(run['ckpt'])


def test_data_root_and_cfg_options_apply_to_the_export(run, msi_root, tmp_path, tool):
    out = tmp_path / 'export'
    tool('export_students', run['config'], run['ckpt'], '--out-dir', out, '--data-root',
         msi_root, '--cfg-options', 'test_dataloader.batch_size=3')
    exported = Config.fromfile(out / 'student1.py')
    assert exported.test_dataloader.batch_size == 3
    assert exported.val_dataloader.dataset.data_root == msi_root


def test_relative_out_dir_gives_a_detection_config_that_finds_its_annotations(tmp_path,
                                                                              tool):
    # A relative --out-dir used to be joined to data_root a second time in ann_file, so
    # neither mmdet's nor mmkd's tools/test.py found the exported annotations.
    root = write_kvasir_seg(str(tmp_path / 'kvasir'), num_images=4, seed=1)
    cfg = scratch_config('configs/kvasir_kdml_v3.py')
    set_data_root(cfg, root)
    cfg.model.teacher = tiny_detector('gfl', 8)
    cfg.model.students = [tiny_detector('gfl', 8), tiny_detector('gfl', 8)]
    config = str(tmp_path / 'det.py')
    cfg.dump(config)
    from mmkd.registry import MODELS
    distiller = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'det.pth')
    torch.save({'state_dict': distiller.state_dict(), 'meta': {}}, ckpt)
    out = osp.relpath(tmp_path / 'export')
    assert not osp.isabs(out)
    tool('export_students', config, ckpt, '--out-dir', out)
    exported = Config.fromfile(osp.join(out, 'student0.py'))
    dataset = exported.test_dataloader.dataset
    assert dataset.ann_file == str(tmp_path / 'export' / 'student0_test.json')
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        built = DATASETS.build(dataset)
    assert len(built) > 0
    assert exported.test_evaluator.ann_file == dataset.ann_file
