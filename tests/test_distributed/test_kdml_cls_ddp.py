"""Classification KD + ML (online teacher, two peer students) under 2-process DDP against its
single-process accumulation replay. (Its evaluation uses ``MultiModelClsMetric``, checked
under DDP by ``test_self_distill_ddp.py``.)

The replay and why it is exact are explained in ``test_self_distill_ddp.py``: per-rank batch B
on 2 ranks == micro-batches of B with ``accumulative_counts=2`` in ``RankInterleavedSampler``
order. The distiller needs no ``find_unused_parameters``: DDP's default (False) raises at the
next step when a parameter got no gradient, and each rank takes two steps.
"""
import os.path as osp
import re

import pytest
import torch

from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.testing import scratch_config, write_msi_tiles
from mmkd.testing.torchrun import BN_STATS, REPO_ROOT, TEST_IMPORTS, run_tool

CONFIG = osp.join(REPO_ROOT, 'configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py')
BATCH = 5  # 20 training tiles: 2 steps on each of 2 ranks
TOL = dict(rtol=1e-5, atol=1e-6)


def load(path):
    return safe_torch_load(path)


def tiny(width: int) -> dict:
    return dict(type='CIFARResNet', depth=18, num_stages=2, base_channels=width)


def write_configs(data_root: str, folder) -> tuple:
    cfg = scratch_config(CONFIG)
    cfg.custom_imports = dict(imports=TEST_IMPORTS, allow_failed_imports=False)
    # The V1 wiring (online teacher, 2 students, max-ensemble) with tiny backbones.
    cfg.model.teacher.backbone = tiny(16)
    for student in cfg.model.students:
        student.backbone = tiny(8)
    cfg.train_dataloader.update(batch_size=BATCH, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=data_root, img_size=32)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.custom_hooks = [dict(type='RankStateDumpHook')]
    cfg.randomness = dict(seed=0)
    ddp = str(folder / 'ddp.py')
    cfg.dump(ddp)
    cfg.train_dataloader.sampler = dict(type='RankInterleavedSampler', world_size=2,
                                        batch_size=BATCH, shuffle=True)
    cfg.optim_wrapper.accumulative_counts = 2
    reference = str(folder / 'reference.py')
    cfg.dump(reference)
    return ddp, reference


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('kdml_ddp')
    write_msi_tiles(str(tmp / 'msi'), layout='kaggle', num_patients=5, tiles_per_patient=5,
                    img_size=32)
    ddp, reference = write_configs(str(tmp / 'msi'), tmp)
    log = str(tmp / 'runs.log')
    out = run_tool('train', [ddp, '--work-dir', str(tmp / 'ddp')], nproc=2, log_file=log)
    run_tool('train', [reference, '--work-dir', str(tmp / 'ref')], nproc=1, log_file=log)
    return dict(tmp=tmp, config=ddp, log=log, ddp_output=out,
                rank0=load(tmp / 'ddp' / 'rank0.pth'), rank1=load(tmp / 'ddp' / 'rank1.pth'),
                ref=load(tmp / 'ref' / 'rank0.pth'))


def parameters(dump: dict) -> list:
    state, params = dump['state_dict'], set(dump['param_names'])
    assert all(k.endswith(BN_STATS) for k in state if k not in params)
    return [k for k in state if k in params]


def test_trains_without_unused_parameters(runs):
    # The wrapper tools/train.py configures on CPU, with DDP's default
    # find_unused_parameters=False (the logged config would name it otherwise).
    out = runs['ddp_output']
    assert re.search(r"model_wrapper_cfg = dict\(\s*device_ids=None, "
                     r"type='DistillerDistributedDataParallel'\)", out)
    assert 'find_unused_parameters' not in out
    assert len(runs['rank0']['iters']) == len(runs['rank1']['iters']) == 2
    keys = parameters(runs['rank0'])
    assert {k.split('.')[0] for k in keys} == {'teacher', 'students'}
    for key in keys:
        assert torch.equal(runs['rank0']['state_dict'][key], runs['rank1']['state_dict'][key]), key


def test_weights_and_losses_match_single_process_accumulation(runs):
    for key in parameters(runs['rank0']):
        torch.testing.assert_close(runs['rank0']['state_dict'][key],
                                   runs['ref']['state_dict'][key], **TOL, msg=key)
    for rank in (0, 1):
        for t, it in enumerate(runs[f'rank{rank}']['iters']):
            ref = runs['ref']['iters'][2 * t + rank]
            assert it['ids'] == ref['ids'], (rank, t)
            keys = {'teacher.loss_cls', 'student1.loss_kd', 'student0.loss_ml'}
            assert keys <= set(it['losses'])
            for key, value in it['losses'].items():
                assert value == pytest.approx(ref['losses'][key], rel=1e-5, abs=1e-6), (
                    rank, t, key)

