"""PS-KD + BYOT + DMFL under 2-process DDP (torchrun, gloo on CPU) against its single-process
equivalent, and ``tools/test.py`` on 2 processes against 1.

The reference is exact by construction. DDP on 2 ranks with per-rank batch B averages the two
ranks' gradients, ``(g0 + g1) / 2``; one process with micro-batches of B,
``optim_wrapper.accumulative_counts=2`` (mmengine divides each micro-batch loss by 2) and
``RankInterleavedSampler`` (rank 0's batch of a step, then rank 1's, in the order
``DefaultSampler`` gives each rank) accumulates ``g0 / 2 + g1 / 2``: the same update, with the
same per-micro-batch BatchNorm statistics as per-rank ones, and the same augmentation
(``ClsDataPreprocessor`` draws from ``(seed, epoch, sample_idx)`` only). Both scalings are by
a power of two and a 2-way sum commutes, so on CPU the runs agree bit for bit; the asserts keep
a float tolerance (rtol 1e-5, atol 1e-6) in case another BLAS orders sums differently.

BatchNorm running statistics are not compared: they never enter a training-mode forward, and
under DDP (``broadcast_buffers=True``) every forward starts from rank 0's buffers, so each
rank's final statistics are those of rank 0 updated by its own last batch, while the reference
updates them once per micro-batch.
"""
import os.path as osp
import pickle

import pytest
import torch
from mmengine.config import Config

from mmkd.checkpoint.allowlist import safe_torch_load
from mmkd.testing import write_cifar100
from mmkd.testing.torchrun import (BN_STATS, REPO_ROOT, TEST_IMPORTS, read_test_metrics,
                                   run_tool)
from mmkd.utils import format_metric_table

CONFIG = osp.join(REPO_ROOT, 'configs/self_distill/pskd-byot-dmfl_r18_1xb128-300e_cifar100.py')
BATCH = 25  # per rank: 100 training samples -> 2 steps per epoch on each of 2 ranks
EPOCHS = 2  # epoch 2 reads the PS-KD memory written in epoch 1
NUM_TEST = 51  # odd: the distributed test sampler pads rank 1 with a repeated sample
TOL = dict(rtol=1e-5, atol=1e-6)


def write_data(root: str) -> None:
    """100 training images (one per class) and an odd number of test images."""
    folder = write_cifar100(root, num_train_per_class=1, num_test_per_class=1)
    path = osp.join(folder, 'test')
    with open(path, 'rb') as f:
        entry = pickle.load(f, encoding='latin1')
    for key in ('filenames', 'fine_labels', 'coarse_labels', 'data'):
        entry[key] = entry[key][:NUM_TEST]
    with open(path, 'wb') as f:
        pickle.dump(entry, f, protocol=2)


def write_configs(data_root: str, folder) -> tuple:
    """The paper config with a tiny backbone (``ddp.py``) and its accumulation replay
    (``reference.py``), written as files for tools/train.py."""
    cfg = Config.fromfile(CONFIG)
    cfg.custom_imports = dict(imports=TEST_IMPORTS, allow_failed_imports=False)
    cfg.model.backbone.base_channels = 8
    for name in ('train_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=BATCH, num_workers=0, persistent_workers=False)
        cfg[name].dataset.data_root = data_root
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=EPOCHS)
    cfg.custom_hooks = [dict(type='PSKDMemoryHook'), dict(type='RankStateDumpHook')]
    cfg.randomness = dict(seed=0)
    ddp = str(folder / 'ddp.py')
    cfg.dump(ddp)
    cfg.train_dataloader.sampler = dict(type='RankInterleavedSampler', world_size=2,
                                        batch_size=BATCH, shuffle=True)
    cfg.optim_wrapper.accumulative_counts = 2
    reference = str(folder / 'reference.py')
    cfg.dump(reference)
    return ddp, reference


def load(path):
    return safe_torch_load(path)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('self_distill_ddp')
    write_data(str(tmp / 'cifar'))
    ddp, reference = write_configs(str(tmp / 'cifar'), tmp)
    log = str(tmp / 'runs.log')
    run_tool('train', [ddp, '--work-dir', str(tmp / 'ddp')], nproc=2, log_file=log)
    run_tool('train', [reference, '--work-dir', str(tmp / 'ref')], nproc=1, log_file=log)
    return dict(tmp=tmp, config=ddp, log=log,
                rank0=load(tmp / 'ddp' / 'rank0.pth'), rank1=load(tmp / 'ddp' / 'rank1.pth'),
                ref=load(tmp / 'ref' / 'rank0.pth'),
                ckpt=load(tmp / 'ddp' / f'epoch_{EPOCHS}.pth'))


def compared_keys(dump: dict) -> list:
    """Parameters and the PS-KD memory; the only other entries are BN running statistics."""
    state, params = dump['state_dict'], set(dump['param_names'])
    others = [k for k in state if k not in params]
    assert {k for k in others if not k.endswith(BN_STATS)} == {'pskd_memory.rows'}
    return [k for k in state if k in params or k == 'pskd_memory.rows']


def test_trained_as_two_ranks(runs):
    assert (runs['rank0']['world_size'], runs['rank1']['world_size']) == (2, 2)
    assert len(runs['rank0']['iters']) == len(runs['rank1']['iters']) == EPOCHS * 2
    assert len(runs['ref']['iters']) == EPOCHS * 4
    # In each epoch the two ranks trained on disjoint halves of the training set.
    for epoch in range(EPOCHS):
        seen = [i for rank in ('rank0', 'rank1')
                for it in runs[rank]['iters'][2 * epoch:2 * epoch + 2] for i in it['ids']]
        assert sorted(seen) == list(range(100))


def test_ranks_hold_identical_parameters_and_pskd_memory(runs):
    rows0 = runs['rank0']['state_dict']['pskd_memory.rows']
    assert rows0.shape == (100, 100)
    # Every row was written (a softmax), by its own rank or through the all-gather.
    torch.testing.assert_close(rows0.sum(1), torch.ones(100))
    for key in compared_keys(runs['rank0']):
        assert torch.equal(runs['rank0']['state_dict'][key], runs['rank1']['state_dict'][key]), key


def test_checkpoint_holds_rank0_state(runs):
    ckpt = runs['ckpt']['state_dict']
    for key in compared_keys(runs['rank0']):
        assert torch.equal(ckpt[key], runs['rank0']['state_dict'][key]), key


def test_weights_and_pskd_memory_match_single_process_accumulation(runs):
    keys = compared_keys(runs['rank0'])
    assert 'pskd_memory.rows' in keys and len(keys) > 50
    for key in keys:
        torch.testing.assert_close(runs['rank0']['state_dict'][key],
                                   runs['ref']['state_dict'][key], **TOL, msg=key)


def test_each_rank_step_matches_its_reference_micro_batch(runs):
    # Step t of rank r is micro-batch 2t + r of the reference: same samples, same losses
    # (every logged term, unscaled, PS-KD alpha included).
    for rank in (0, 1):
        for t, it in enumerate(runs[f'rank{rank}']['iters']):
            ref = runs['ref']['iters'][2 * t + rank]
            assert it['ids'] == ref['ids'], (rank, t)
            assert set(it['losses']) == set(ref['losses'])
            assert 'exit1.loss_dmfl' in it['losses'] and 'exit1.loss_kd' in it['losses']
            for key, value in it['losses'].items():
                assert value == pytest.approx(ref['losses'][key], rel=1e-5, abs=1e-6), (
                    rank, t, key)


def test_test_tool_on_two_processes_matches_one(runs):
    tmp, ckpt = runs['tmp'], str(runs['tmp'] / 'ddp' / f'epoch_{EPOCHS}.pth')
    outputs = {}
    for nproc in (1, 2):
        outputs[nproc] = run_tool('test', [runs['config'], ckpt, '--work-dir',
                                           str(tmp / f'test{nproc}')],
                                  nproc=nproc, log_file=runs['log'])
    one, two = read_test_metrics(tmp / 'test1'), read_test_metrics(tmp / 'test2')
    models = ('exit1', 'exit2', 'exit3', 'exit4', 'ensemble')
    assert {k.split('/')[0] for k in one} == set(models)
    assert set(two) == set(one)
    for key, value in one.items():
        # A padded sample counted twice would move every mean by about 1/51.
        assert two[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    # The table is printed once, by rank 0.
    header = format_metric_table(one).splitlines()[0]
    assert outputs[1].count(header) == outputs[2].count(header) == 1
