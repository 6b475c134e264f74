"""tools/compare_kdml.py (mmkd.experiments.seeded_runs) on issue 20's cases: a cached run made with
another config (budget) is refused, not mixed into the table; hand-edited or broken
result.json files are named; default metrics follow the task; the Welch p is reported
against KD only and against the students alone."""
import json
import os
import re

import pytest

from mmkd.experiments import seeded_runs as experiment
from mmkd.experiments.kdml_variants import comparison_report, default_metrics
from mmkd.experiments.seeded_runs import Run, execute


@pytest.fixture
def fake_train(monkeypatch, tmp_path):
    """subprocess.run standing in for tools/train.py: writes a checkpoint name and one
    validation line (``metrics``) into the run's work dir."""
    calls = []

    def run(cmd, stdout, stderr, cwd, env=None):
        calls.append(cmd)
        work = cmd[cmd.index('--work-dir') + 1]
        os.makedirs(os.path.join(work, '20260101_000000', 'vis_data'), exist_ok=True)
        with open(os.path.join(work, 'last_checkpoint'), 'w') as f:
            f.write(os.path.join(work, 'epoch_1.pth'))
        with open(os.path.join(work, '20260101_000000', 'vis_data', 'scalars.json'), 'w') as f:
            f.write(json.dumps({'student0/mIoU': 42.0, 'step': 1}) + '\n')
        return type('Done', (), {'returncode': 0})()

    monkeypatch.setattr(experiment.subprocess, 'run', run)
    return calls


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'kd.py'
    path.write_text('train_cfg = dict(max_epochs=10)\nmodel = dict(type="X")\n')
    return path


def test_a_cached_run_of_another_budget_is_refused(config, tmp_path, fake_train):
    out = str(tmp_path / 'out')
    first = execute(Run('kd_s0', str(config), seed=0, group='kd'), out)
    assert execute(Run('kd_s0', str(config), seed=0, group='kd'), out) == first
    assert len(fake_train) == 1
    # Another budget in the config (as --cfg-options train_cfg.max_epochs=3 writes it): runs
    # used to be keyed by variant and seed only, and the old result was reused.
    config.write_text('train_cfg = dict(max_epochs=3)\nmodel = dict(type="X")\n')
    with pytest.raises(RuntimeError, match=re.escape(
            f'run kd_s0 in {out}/runs/kd_s0 was made with another config '
            f'({out}/runs/kd_s0/result.json: train_cfg.max_epochs: 10 -> 3)')):
        execute(Run('kd_s0', str(config), seed=0, group='kd'), out)
    with pytest.raises(RuntimeError, match=re.escape('options: [] -> [\'a=1\']')):
        execute(Run('kd_s0', str(config), options=['a=1'], seed=0, group='kd'), out)
    assert len(fake_train) == 1


def test_a_started_run_of_another_config_is_not_resumed(config, tmp_path, fake_train):
    out = tmp_path / 'out'
    folder = out / 'runs' / 'kd_s0'
    folder.mkdir(parents=True)
    (folder / 'run.json').write_text(json.dumps(experiment.resolved_run(
        Run('kd_s0', str(config), seed=1))))  # killed half-way, under seed 1
    with pytest.raises(RuntimeError, match=re.escape('seed: 1 -> 0')):
        execute(Run('kd_s0', str(config), seed=0, group='kd'), str(out))
    assert not fake_train


@pytest.mark.parametrize('content, error', [
    ('{"metrics": {"student0/mIoU": 1e9}}',
     "metrics['student0/mIoU'] = 1000000000.0 is a percentage outside [0, 100]"),
    ('{"metrics": {"student0/mIoU": -5}}',
     "metrics['student0/mIoU'] = -5 is a percentage outside [0, 100]"),
    ('{"metrics": {"student0/nll": "0.3"}}',
     "metrics['student0/nll'] = '0.3' is not a finite number"),
    ('{"metrics": {"student0/nll": NaN}}', "metrics['student0/nll'] = nan is not a finite"),
    ('{"metrics": ', 'is not JSON (Expecting value'),
    ('[1, 2]', 'holds no "metrics" record'),
])
def test_a_broken_result_file_is_named(content, error, config, tmp_path, fake_train):
    # Used to print 1e9 % or -5 % as results, or end in a numpy/json error naming no file.
    folder = tmp_path / 'out' / 'runs' / 'kd_s0'
    folder.mkdir(parents=True)
    (folder / 'result.json').write_text(content)
    with pytest.raises(ValueError, match=re.escape(f'{folder}/result.json') + '.*' +
                       re.escape(error)):
        execute(Run('kd_s0', str(config), group='kd'), str(tmp_path / 'out'))
    assert not fake_train


def record(group, seed, **metrics):
    return dict(group=group, seed=seed, seconds=1.0, metrics=metrics)


def test_default_metrics_follow_the_task():
    # compare_kdml.py used to default to mIoU / AP50 and print tables of '—' for a classifier.
    cls = [record('kd', 0, **{'ensemble/top1_acc': 80.0, 'ensemble/ece': 3.0})]
    det = [record('kd', 0, **{'ensemble/mIoU': 60.0, 'ensemble/AP50': 70.0, 'ensemble/AP': 1})]
    assert default_metrics(cls) == ['top1_acc', 'ece']
    assert default_metrics(det) == ['mIoU', 'AP50']


def test_welch_p_against_kd_only_and_students_alone():
    results = []
    for s in (0, 1, 2):
        results += [record('alone', s, **{'ensemble/acc': 70.0 + s}),
                    record('kd', s, **{'ensemble/acc': 80.0 + s}),
                    record('kdml', s, **{'ensemble/acc': 81.0 + s}),
                    record('kdml-offline', s, **{'ensemble/acc': 80.0 + s})]
    report = comparison_report(results, 1, ['acc'], 'acc')
    assert ('| variant | ensemble | KD ensemble | p vs KD | students-alone ensemble | '
            'p vs alone |') in report
    assert ('| KD + ML (On) | 82.00 ± 1.00 | 81.00 ± 1.00 | 0.288 | 71.00 ± 1.00 | < 0.001 |'
            in report)
    assert '| KD + ML (Off) | 81.00 ± 1.00 | 81.00 ± 1.00 | 1.000 | 71.00 ± 1.00 | < 0.001 |' \
        in report


def test_relative_paths_reach_the_run_started_in_the_repository(config, tmp_path, fake_train,
                                                                 monkeypatch):
    # The train subprocess starts in the repository root: a relative --out-dir or config from
    # another folder used to name other (or no) files there.
    monkeypatch.chdir(tmp_path)
    record = execute(Run('kd_s0', 'kd.py', group='kd'), 'out')
    cmd = fake_train[0]
    assert cmd[2] == str(config)
    assert cmd[cmd.index('--work-dir') + 1] == str(tmp_path / 'out' / 'runs' / 'kd_s0' / 'work')
    assert record['metrics'] == {'student0/mIoU': 42.0}


def test_an_infinite_nll_is_a_result(config, tmp_path, fake_train):
    # -ln 0: the one metric that may be inf; a % metric may not.
    folder = tmp_path / 'out' / 'runs' / 'kd_s0'
    folder.mkdir(parents=True)
    (folder / 'result.json').write_text('{"metrics": {"teacher/nll": Infinity}}')
    assert execute(Run('kd_s0', str(config), group='kd'), str(tmp_path / 'out'))[
        'metrics'] == {'teacher/nll': float('inf')}


def test_metrics_no_run_recorded_are_named():
    # --metrics mIoU on classification runs used to print tables of '—'.
    from mmkd.experiments.kdml_variants import check_metrics
    results = [record('kd', 0, **{'ensemble/top1_acc': 80.0, 'ensemble/nll': 0.5})]
    with pytest.raises(ValueError, match=re.escape(
            '--metrics mIoU: no run recorded it; the runs recorded nll, top1_acc')):
        check_metrics(results, ['top1_acc', 'mIoU'])


def test_a_repeated_seed_is_refused(tool, tmp_path):
    # --seeds 0 0 used to train once and count the cached run twice (std 0).
    with pytest.raises(SystemExit, match=re.escape('--seeds 0 0: give each seed once')):
        tool('compare_kdml', 'configs/kvasir_kdml_v3.py', '--out-dir', tmp_path / 'o',
             '--seeds', '0', '0')
    assert not (tmp_path / 'o').exists()


def test_an_unknown_variant_is_refused_when_parsed(tool, tmp_path, capsys):
    with pytest.raises(SystemExit):
        tool('compare_kdml', 'configs/kvasir_kdml_v3.py', '--out-dir', tmp_path / 'o',
             '--variants', 'kd', 'offline')
    assert "argument --variants: invalid choice: 'offline'" in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()
