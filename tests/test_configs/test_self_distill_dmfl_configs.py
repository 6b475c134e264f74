"""Paper A's DMFL rows: the paper-row configs train DMFL without gradient, as the reference code
did (SPEC §4.2), and each has a ``dmflgrad`` twin that trains the DMFL term the paper describes."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmkd.registry import MODELS

SUFFIX = '_1xb128-300e_cifar100.py'
ROOT = 'configs/self_distill'
# Table 1 (3 backbones x 4 DMFL rows), Table 3 ({2,3} and {3}; {1,2,3} is Table 1's full row)
# and Table 4 (N = 3 and 2 stages; N = 4 is Table 1's full row).
PAPER_ROWS = [f'{algo}_{arch}' for arch in ('r18', 'r50', 'rx50')
              for algo in ('dmfl', 'pskd-dmfl', 'byot-dmfl', 'pskd-byot-dmfl')] + [
                  'pskd-byot23-dmfl_r18', 'pskd-byot3-dmfl_r18',
                  'pskd-byot-dmfl_r18-3stages', 'pskd-byot-dmfl_r18-2stages']


def grad_twin(row):
    algo, rest = row.split('_', 1)
    return f"{algo.replace('dmfl', 'dmflgrad')}_{rest}"


PAIRS = [(row, grad_twin(row)) for row in PAPER_ROWS]


def test_dmfl_configs_are_the_paper_rows_and_their_grad_twins():
    names = {osp.basename(p)[:-len(SUFFIX)] for p in glob.glob(f'{ROOT}/*dmfl*.py')}
    assert names == set(PAPER_ROWS) | {grad for _, grad in PAIRS}
    assert len(names) == 32


@pytest.mark.parametrize('row,grad', PAIRS)
def test_grad_twin_differs_only_in_legacy_no_grad(row, grad):
    legacy = Config.fromfile(f'{ROOT}/{row}{SUFFIX}')
    twin = Config.fromfile(f'{ROOT}/{grad}{SUFFIX}')
    assert legacy.model.dmfl == dict(legacy_no_grad=True)
    assert twin.model.dmfl == dict(legacy_no_grad=False)
    twin.model.dmfl.legacy_no_grad = True
    assert twin.to_dict() == legacy.to_dict()
    header = open(f'{ROOT}/{row}{SUFFIX}').read()
    assert 'WITHOUT gradient' in header and f'{grad}{SUFFIX}' in header
    assert 'DMFL WITH gradient' in open(f'{ROOT}/{grad}{SUFFIX}').read()


def _dmfl_loss_of_exit1(name, epoch_info):
    cfg = Config.fromfile(f'{ROOT}/{name}{SUFFIX}')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if model.pskd is not None:
        model.pskd_memory.allocate(2)
    epoch_info(1, 300)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    losses = model.loss(x, dict(gt_label=torch.tensor([3, 7]), sample_idx=torch.tensor([0, 1])))
    return model, losses['exit1.loss_dmfl']


@pytest.mark.parametrize('row', ['dmfl_r18', 'pskd-byot-dmfl_r50', 'byot-dmfl_rx50',
                                 'pskd-byot3-dmfl_r18', 'pskd-byot-dmfl_r18-2stages'])
def test_legacy_dmfl_loss_carries_no_gradient(row, epoch_info):
    model, loss = _dmfl_loss_of_exit1(row, epoch_info)
    assert model.dmfl['legacy_no_grad'] is True
    assert loss.item() > 0 and not loss.requires_grad and loss.grad_fn is None


@pytest.mark.parametrize('row', ['dmfl_r18', 'pskd-byot-dmfl_r50', 'byot-dmfl_rx50',
                                 'pskd-byot3-dmfl_r18', 'pskd-byot-dmfl_r18-2stages'])
def test_grad_dmfl_loss_reaches_the_exit_and_the_backbone(row, epoch_info):
    model, loss = _dmfl_loss_of_exit1(grad_twin(row), epoch_info)
    assert model.dmfl['legacy_no_grad'] is False
    loss.backward()
    branch = [p.grad for p in model.exits[0].branch.parameters()]
    assert all(g is not None for g in branch) and any(torch.count_nonzero(g) for g in branch)
    assert torch.count_nonzero(model.backbone.layer1[0].conv1.weight.grad) > 0
