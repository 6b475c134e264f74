"""Detection KD + ML (``configs/kvasir_kdml_v3.py``: online GFL teacher, two GFL students, NMS
ensemble) under 2-process DDP, and ``tools/test.py`` on 2 processes against 1.

mmdet's GFL loss normalises by ``reduce_mean(num_pos)`` (an all-reduce over the ranks inside
the forward pass), and the distiller's box / LD distillation by ``reduce_mean`` of the target
confidence, so DDP with batch B per rank equals ONE process with batch 2B holding both ranks'
samples (``RankInterleavedSampler`` order), not an accumulation of micro-batches. That holds
when no layer mixes samples of a batch: the backbones' BatchNorm runs in eval mode
(``norm_eval``; the heads use GroupNorm) and the random flip is off, in both runs. The test
also asserts what DDP guarantees by itself: the run completes with DDP's default
``find_unused_parameters=False``, the ranks train on disjoint halves of the data, and they end
with identical weights. Evaluation is per image and must not depend on the number of processes.
"""
import os.path as osp
import re

import pytest
import torch

from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.testing import scratch_config, tiny_detector, write_kvasir_seg
from mmkd.testing.torchrun import (REPO_ROOT, TEST_IMPORTS, rank_dumps_differ,
                                   read_test_metrics, run_tool)

CONFIG = osp.join(REPO_ROOT, 'configs/kvasir_kdml_v3.py')
NUM_IMAGES = 15  # the seeded 80/20 split: 12 training images (3 steps of 2 per rank), 3 val
MODELS = ('teacher', 'student0', 'student1', 'ensemble')


def write_config(data_root: str, folder) -> str:
    cfg = scratch_config(CONFIG)
    cfg.custom_imports = dict(imports=TEST_IMPORTS, allow_failed_imports=False)
    cfg.model.teacher = tiny_detector('gfl', 16)
    cfg.model.students = [tiny_detector('gfl', 8), tiny_detector('gfl', 8)]
    for det in [cfg.model.teacher, *cfg.model.students]:
        det['backbone']['norm_eval'] = True  # no batch statistics: see the module docstring
    cfg.train_dataloader.dataset.pipeline = [
        t for t in cfg.train_dataloader.dataset.pipeline if t.type != 'RandomFlip']
    # Test images at 160 px: at 96 the 1x1 top FPN level of a one-image batch leaves one value
    # per GroupNorm group in the students' 32-channel heads, which torch rejects.
    for name, scale in (('train_dataloader', 96), ('test_dataloader', 160)):
        loader = cfg[name]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = data_root
        for step in loader.dataset.pipeline:
            if step.type == 'Resize':
                step.scale = (scale, scale)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.custom_hooks = [dict(type='RankStateDumpHook')]
    cfg.randomness = dict(seed=0)
    path = str(folder / 'ddp.py')
    cfg.dump(path)
    # One process, batch 4 = rank 0's 2 images then rank 1's 2, as the DDP run sees them.
    cfg.train_dataloader.batch_size = 4
    cfg.train_dataloader.sampler = dict(type='RankInterleavedSampler', world_size=2,
                                        batch_size=2, shuffle=True)
    cfg.dump(str(folder / 'reference.py'))
    return path


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('det_kdml_ddp')
    # One image size: every test batch pads to the same shape whatever its composition.
    write_kvasir_seg(str(tmp / 'kvasir'), num_images=NUM_IMAGES, seed=1,
                     img_size_range=((240, 240), (320, 320)))
    config = write_config(str(tmp / 'kvasir'), tmp)
    log = str(tmp / 'runs.log')
    out = run_tool('train', [config, '--work-dir', str(tmp / 'ddp')], nproc=2, log_file=log)
    run_tool('train', [str(tmp / 'reference.py'), '--work-dir', str(tmp / 'reference')],
             nproc=1, log_file=log)
    return dict(tmp=tmp, config=config, log=log, output=out,
                dumps=[safe_torch_load(tmp / 'ddp' / f'rank{r}.pth')
                       for r in (0, 1)])


def test_ranks_train_disjoint_halves_into_identical_weights(run):
    rank0, rank1 = run['dumps']
    assert (rank0['world_size'], rank1['world_size']) == (2, 2)
    assert len(rank0['iters']) == len(rank1['iters']) == 3
    ids = [[i for it in d['iters'] for i in it['ids']] for d in run['dumps']]
    assert len(ids[0]) == len(ids[1]) == 6
    assert len(set(ids[0]) | set(ids[1])) == 12  # disjoint, and together the training split
    assert re.search(r"model_wrapper_cfg = dict\(\s*device_ids=None, "
                     r"type='DistillerDistributedDataParallel'\)", run['output'])
    assert 'find_unused_parameters' not in run['output']
    for it in rank0['iters'] + rank1['iters']:
        assert {'teacher.loss_cls', 'student0.loss_kd_box', 'student1.loss_ml_ld'} <= set(
            it['losses'])
    params = set(rank0['param_names'])
    assert {k.split('.')[0] for k in params} == {'teacher', 'students'}
    assert rank_dumps_differ(rank0, rank1) == []
    # The weights did train (the check above is not vacuous).
    ckpt = safe_torch_load(run['tmp'] / 'ddp' / 'epoch_1.pth')
    assert all(torch.equal(ckpt['state_dict'][k], rank0['state_dict'][k]) for k in params)


def test_ddp_equals_one_process_with_the_global_batch(run):
    ddp = safe_torch_load(run['tmp'] / 'ddp' / 'epoch_1.pth')['state_dict']
    ref = safe_torch_load(run['tmp'] / 'reference' / 'epoch_1.pth')['state_dict']
    init = safe_torch_load(run['tmp'] / 'ddp' / 'rank0.pth')
    assert ddp.keys() == ref.keys()
    moved = 0
    for key in run['dumps'][0]['param_names']:
        # float32 sums in a different order (all-reduce vs one batch): rounding only
        torch.testing.assert_close(ddp[key], ref[key], rtol=1e-4, atol=1e-5, msg=key)
        moved += 1
    assert moved > 0 and init['world_size'] == 2


def test_test_tool_on_two_processes_matches_one(run):
    tmp, ckpt = run['tmp'], str(run['tmp'] / 'ddp' / 'epoch_1.pth')
    outputs = {}
    for nproc in (1, 2):
        outputs[nproc] = run_tool(
            'test', [run['config'], ckpt, '--work-dir', str(tmp / f'test{nproc}')],
            nproc=nproc, log_file=run['log'])
    one, two = read_test_metrics(tmp / 'test1'), read_test_metrics(tmp / 'test2')
    assert set(one) == {f'{m}/{k}' for m in MODELS for k in ('mIoU', 'acc50', 'AP', 'AP50')}
    assert set(two) == set(one)
    for key, value in one.items():
        assert two[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    # 3 val images on 2 ranks: rank 1 repeats one; the metric counts it once.
    for out in outputs.values():
        assert 'DetIoUMetric: 3 images' in out
