"""The Fashion-MNIST reproduction command: its paper-A report, its rows' configs and the
package check."""
import runpy

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
    assert '| baseline | 15.50 ± 0.71 | 1.00 ± 0.00 | 0.50 ± 0.00 | 3.00 ± 0.00 | ' \
        '30.00 ± 0.00 | 15.00 ± 0.00 | 40 |' in lines
    assert '| + PS-KD | 81.50 ± 0.71 | 82.50 ± 0.71 | 83.50 ± 0.71 | 84.50 ± 0.71 | ' \
        '85.00 ± 0.00 |' in lines
    assert 'mean ± std over 2 seeds [0, 1]' in report


def test_missing_files_in_a_custom_folder_are_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        TOOL['ensure_fashion_mnist'](str(tmp_path))
