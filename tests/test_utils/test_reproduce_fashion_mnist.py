"""The Fashion-MNIST reproduction command: its paper-A report, its rows' configs, the long
self-distillation part and the package check."""
import json
import os
import os.path as osp
import runpy
from types import SimpleNamespace

import pytest
from mmengine.config import Config

TOOL = runpy.run_path('tools/reproduce_fashion_mnist.py')


def test_rows_are_paper_a_rows_with_both_dmfl_objectives():
    rows = {name: overrides for name, _, overrides in TOOL['SELF_DISTILL_ROWS']}
    assert list(rows) == ['baseline', 'pskd', 'byot', 'dmfl-grad', 'dmfl-ref',
                          'pskd-byot-dmfl-grad', 'pskd-byot-dmfl-ref']
    assert rows['dmfl-ref']['dmfl'] == dict(legacy_no_grad=True)
    assert rows['dmfl-grad']['dmfl'] == dict(legacy_no_grad=False)
    base = Config.fromfile(TOOL['SELF_DISTILL_CFG'])
    assert base.model.get('pskd') is None and base.model.get('byot') is None
    assert base.model.num_classes == 10 and base.train_dataloader.dataset.subset_size == 6000
    assert base.test_dataloader.dataset.get('subset_size') is None  # full 10,000 scored


def test_self_distill_report_tables():
    results = []
    for name, _, _ in TOOL['SELF_DISTILL_ROWS']:
        for seed in (0, 1):
            metrics = {f'exit{i}/top1_acc': 80.0 + i + seed for i in range(1, 5)}
            metrics.update({'exit4/top1_err': 16.0 - seed, 'exit4/top5_err': 1.0,
                            'exit4/nll': 0.5, 'exit4/ece': 3.0, 'exit4/aurc': 30.0,
                            'exit4/eaurc': 15.0, 'ensemble/top1_acc': 85.0})
            results.append(dict(group=name, seed=seed, seconds=40.0, metrics=metrics))
    report = TOOL['self_distill_report'](results, 4, [0, 1])
    lines = report.splitlines()
    assert '| baseline (2) | 15.50 ± 0.71 | 1.00 ± 0.00 | 0.500 ± 0.000 | 3.00 ± 0.00 | ' \
        '30.00 ± 0.00 | 15.00 ± 0.00 | 40 |' in lines
    assert '| + PS-KD | 81.50 ± 0.71 | 82.50 ± 0.71 | 83.50 ± 0.71 | 84.50 ± 0.71 | ' \
        '85.00 ± 0.00 |' in lines
    assert 'mean ± std over seeds [0, 1]' in report
    assert "Welch's" not in report  # the 5-epoch part has no p table


def fake_results(rows, top1_err, nll, seeds=(0, 1, 2)):
    """Records of ``rows`` x ``seeds``: exit4 top-1 error ``top1_err[name] + seed`` and NLL
    ``nll[name][seed]`` (the other metrics constant)."""
    results = []
    for name, _, _ in rows:
        for seed in seeds:
            metrics = {f'exit{i}/top1_acc': 80.0 for i in range(1, 5)}
            metrics.update({'exit4/top1_err': top1_err[name] + seed, 'exit4/top5_err': 1.0,
                            'exit4/nll': nll[name][seed], 'exit4/ece': 3.0 + seed,
                            'exit4/aurc': 30.0, 'exit4/eaurc': 15.0 + seed,
                            'ensemble/top1_acc': 85.0})
            results.append(dict(name=f'{name}_s{seed}', group=name, seed=seed, seconds=500.0,
                                metrics=metrics))
    return results


def test_long_part_runs_pskd_comparison_first_with_gradient_dmfl_only():
    rows = {name: overrides for name, _, overrides in TOOL['LONG_SELF_DISTILL_ROWS']}
    assert list(rows) == ['baseline', 'pskd', 'pskd-byot-dmfl-grad', 'byot', 'dmfl-grad']
    assert rows['pskd'] == dict(pskd=dict(alpha_t=0.8))
    assert rows['pskd-byot-dmfl-grad']['dmfl'] == dict(legacy_no_grad=False)
    assert 'selfdistill-long' in TOOL['PARTS']


def test_long_config_schedule():
    short = Config.fromfile(TOOL['SELF_DISTILL_CFG'])
    long = Config.fromfile(TOOL['LONG_SELF_DISTILL_CFG'])
    assert long.train_cfg.max_epochs == 30 and long.train_cfg.val_interval == 2
    # paper A's x0.1 steps at 1/2 and 3/4 of the epochs: the last quarter runs at lr 1e-3
    assert long.param_scheduler == [dict(type='MultiStepLR', by_epoch=True, milestones=[15, 23],
                                         gamma=0.1)]
    assert long.optim_wrapper.optimizer.lr == 0.1
    # only the schedule differs from the 5-epoch config
    for key in ('model', 'train_dataloader', 'val_dataloader', 'val_evaluator', 'custom_hooks'):
        assert long[key] == short[key], key


def test_long_report_welch_column():
    rows = TOOL['LONG_SELF_DISTILL_ROWS']
    top1 = dict(baseline=20.0, pskd=17.0, byot=20.0)
    top1['pskd-byot-dmfl-grad'] = top1['dmfl-grad'] = 20.0
    nll = {name: [0.5, 0.5, 0.5] for name, _, _ in rows}
    nll['baseline'], nll['pskd'] = [0.50, 0.52, 0.54], [0.40, 0.41, 0.42]
    report = TOOL['self_distill_report'](fake_results(rows, top1, nll), 4, [0, 1, 2], rows,
                                         welch=True)
    lines = report.splitlines()
    # scipy.stats.ttest_ind(equal_var=False) by hand: top-1 error 17,18,19 vs 20,21,22 has
    # equal variances 1, t = -3 / sqrt(2/3) = -3.674 on 4 d.o.f., two-sided p = 0.0213;
    # NLL 0.40,0.41,0.42 (var 1e-4) vs 0.50,0.52,0.54 (var 4e-4): t = -0.11 / sqrt(5e-4/3)
    # = -8.521, Welch-Satterthwaite d.o.f. 2.94, p = 0.0036; a constant NLL 0.5 against the
    # baseline's: t = 0.02 / sqrt(4e-4/3) = 1.732 on 2 d.o.f., p = 0.225; identical constant
    # columns give p = nan.
    assert '| + PS-KD | 0.021 | nan | 0.004 | 1.000 | nan | 1.000 |' in lines
    assert '| + BYOT | 1.000 | nan | 0.225 | 1.000 | nan | 1.000 |' in lines
    assert lines.index('| + PS-KD | 0.021 | nan | 0.004 | 1.000 | nan | 1.000 |') > \
        lines.index("Welch's t-test, two-sided p of each row against baseline (same metrics):")
    # a row with one finished seed has no p
    one_seed = [r for r in fake_results(rows, top1, nll) if r['group'] != 'pskd' or r['seed'] == 0]
    report = TOOL['self_distill_report'](one_seed, 4, [0, 1, 2], rows, welch=True)
    assert '| + PS-KD | n/a | n/a | n/a | n/a | n/a | n/a |' in report.splitlines()
    assert '| + PS-KD (1) | 17.00 ± 0.00 |' in report


def test_no_train_reports_finished_runs_only(tmp_path, monkeypatch):
    """``--no-train`` trains nothing and reports the runs that have a result.json."""
    out = str(tmp_path)
    rows = TOOL['LONG_SELF_DISTILL_ROWS']
    done = fake_results(rows[:1], dict(baseline=20.0), dict(baseline=[0.5, 0.5, 0.5]), (0,))[0]
    os.makedirs(osp.join(out, 'runs', 'baseline_s0'))
    with open(osp.join(out, 'runs', 'baseline_s0', 'result.json'), 'w') as f:
        json.dump(done, f)
    part = TOOL['self_distill_part']
    monkeypatch.setitem(part.__globals__, 'execute_all', lambda *a, **k: 1 / 0)
    args = SimpleNamespace(data_root=None, full=False, seeds=[0, 1], no_train=True, jobs=1)
    report = part(args, out, TOOL['LONG_SELF_DISTILL_CFG'], rows)
    assert '| baseline (1) | 20.00 ± 0.00 |' in report
    assert '| + PS-KD (0) | n/a |' in report
    assert sorted(os.listdir(osp.join(out, 'configs'))) == sorted(
        f'{name}.py' for name, _, _ in rows)


def test_paired_rows_run_first_seed_by_seed(tmp_path, monkeypatch):
    order, jobs_seen = [], []

    def execute_all(runs, out, jobs):
        order.extend(r.name for r in runs)
        jobs_seen.append(jobs)
        return []

    part = TOOL['self_distill_part']
    monkeypatch.setitem(part.__globals__, 'execute_all', execute_all)
    args = SimpleNamespace(data_root=None, full=False, seeds=[2, 0], no_train=False, jobs=2)
    part(args, str(tmp_path), TOOL['LONG_SELF_DISTILL_CFG'], TOOL['LONG_SELF_DISTILL_ROWS'],
         paired=2)
    assert order == ['baseline_s2', 'pskd_s2', 'baseline_s0', 'pskd_s0',
                     'pskd-byot-dmfl-grad_s2', 'pskd-byot-dmfl-grad_s0', 'byot_s2', 'byot_s0',
                     'dmfl-grad_s2', 'dmfl-grad_s0']
    assert jobs_seen == [2]  # --jobs reaches execute_all


def test_missing_files_in_a_custom_folder_are_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        TOOL['ensure_fashion_mnist'](str(tmp_path))


def test_rows_option_keeps_the_named_rows_in_the_parts_order():
    select, rows = TOOL['select_rows'], TOOL['LONG_SELF_DISTILL_ROWS']
    kept = select(rows, ['pskd-byot-dmfl-grad', 'baseline', 'pskd'], 'selfdistill-long')
    assert [name for name, _, _ in kept] == ['baseline', 'pskd', 'pskd-byot-dmfl-grad']
    assert select(rows, None, 'selfdistill-long') == rows
    with pytest.raises(SystemExit, match=r'--rows dmfl-ref: not a row of part '
                       r'selfdistill-long; its rows are baseline, pskd, '):
        select(rows, ['baseline', 'dmfl-ref'], 'selfdistill-long')
