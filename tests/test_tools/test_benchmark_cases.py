"""tools/benchmark.py over tools/benchmarks/: every case module is registered under its
``NAME`` (the module's own name), in the order of the --cases choices, and a run prints the
table and writes the JSON rows."""
import importlib
import json
import os.path as osp
import pkgutil
import sys
from unittest import mock

import pytest

TOOLS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools')
ROW_KEYS = {'name', 'value', 'spread', 'target', 'unit', 'met', 'detail'}


@pytest.fixture(scope='module')
def benchmark():
    sys.path.insert(0, TOOLS)  # as `python tools/benchmark.py` has it
    try:
        yield importlib.import_module('benchmark')
    finally:
        sys.path.remove(TOOLS)


def test_every_case_module_is_a_case_under_its_own_name(benchmark):
    modules = {m.name for m in pkgutil.iter_modules([osp.join(TOOLS, 'benchmarks')])}
    assert set(benchmark.CASES) == modules - {'common'}
    for name, run in benchmark.CASES.items():
        case = importlib.import_module(f'benchmarks.{name}')
        assert (case.NAME, run) == (name, case.run)
    # The --cases choices, in this order (README, docs/ and tools/gpu_check.sh name them).
    assert list(benchmark.CASES) == [
        'self_distill_step', 'self_distill_exits', 'runner_loop', 'kdml_cls_step',
        'kdml_cls_val', 'kdml_det_step', 'kdml_det_terms', 'det_vs_mmdet_ld',
        'kdml_cls_vs_torch', 'iou_metric_time', 'calibration_metric_time', 'pskd_allgather',
        'data_throughput', 'kdml_students', 'det_feature_kd', 'device_steps']
    assert benchmark.DEFAULT_CASES == [c for c in benchmark.CASES if c != 'device_steps']


def test_a_run_prints_the_table_and_writes_the_rows(benchmark, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    argv = ['benchmark.py', '--cases', 'calibration_metric_time', '--reps', '1', '--out',
            str(out)]
    with mock.patch.object(sys, 'argv', argv):
        benchmark.main()
    saved = json.loads(out.read_text())
    assert set(saved) == {'rows', 'torch', 'cpus'}
    (row, ) = saved['rows']
    assert set(row) == ROW_KEYS and row['unit'] == 's' and row['value'] > 0
    assert row['name'] == 'calibration metrics, 10,000 samples x 5 models'
    table = capsys.readouterr().out
    assert 'benchmark' in table and row['name'] in table and f'written to {out}' in table


def test_det_feature_kd_times_each_term_from_the_tensors_a_step_has(benchmark, monkeypatch):
    """Issue 22's per-term cost: one row per term of the comparison (LD, PKD, CWD, the
    cross-head at its default layer and at layer 1), each a positive share of the student's
    plain step against the 10 % target (R18 teacher here, to keep the test small)."""
    case = importlib.import_module('benchmarks.det_feature_kd')
    small = case.gfl
    monkeypatch.setattr(case, 'gfl', lambda depth: small(18))
    monkeypatch.setattr(case, 'INNER', 1)
    args = mock.Mock(device='cpu', reps=1, det_batch_size=1, det_img_size=64)
    rows = case.run(args)
    assert [r['name'] for r in rows] == [
        f'det {t} KD overhead, % of student plain step'
        for t in ('ld', 'pkd', 'cwd', 'cross-head', 'cross-head layer 1')]
    for row in rows:
        assert set(row) == ROW_KEYS and row['unit'] == '%' and row['target'] == 10.0
        assert row['value'] > 0 and row['met'] == (row['value'] <= 10.0)


def test_kdml_det_step_prices_the_per_model_optimisers(benchmark):
    """The V3 detection step against one optimiser over all three models (what a user of
    ``DefaultOptimWrapperConstructor`` runs) and against the three plain steps."""
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    case = importlib.import_module('benchmarks.kdml_det_step')
    args = mock.Mock(device='cpu', reps=1, det_batch_size=1, det_img_size=64)
    rows = case.run(args)
    assert [(r['name'], r['target']) for r in rows] == [
        ('KD+ML step, one optimiser per model / one optimiser for all (det, V3 GFL)', 1.02),
        ('KD+ML step / sum of 3 plain steps (det, V3 GFL)', 1.10)]
    for row in rows:
        assert set(row) == ROW_KEYS and row['unit'] == 'x' and row['value'] > 0
    common = importlib.import_module('benchmarks.common')
    model, data = common.kdml_det(args)
    per_model = common.train_step_fn(model, data).optim_wrapper
    one = common.train_step_fn(model, data, 'DefaultOptimWrapperConstructor').optim_wrapper
    assert isinstance(per_model, OptimWrapperDict)
    assert sorted(per_model.keys()) == ['student0', 'student1', 'teacher']
    assert isinstance(one, OptimWrapper) and not isinstance(one, OptimWrapperDict)
