"""execute_all(jobs=N) (the comparison tools' ``--jobs``): runs train side by side, each
offline run after the teacher it loads, each with its share of the cores; the records come
back in the runs' order; a failed run stops new runs while those under way finish."""
import argparse
import json
import os
import threading
import time

import pytest

from mmkd.experiments import seeded_runs as experiment
from mmkd.experiments.seeded_runs import Run, add_jobs_argument, execute_all


class FakeTrain:
    """``subprocess.run`` standing in for tools/train.py: logs start / end per run, holds
    each run ``hold[name]`` seconds (default 0.2), exits 1 for the names in ``fail``."""

    def __init__(self, hold=None, fail=()):
        self.hold, self.fail = hold or {}, set(fail)
        self.events, self.envs, self.cmds = [], {}, {}
        self.lock, self.live, self.most = threading.Lock(), 0, 0

    def __call__(self, cmd, stdout, stderr, cwd, env=None):
        work = cmd[cmd.index('--work-dir') + 1]
        name = os.path.basename(os.path.dirname(work))
        with self.lock:
            self.live += 1
            self.most = max(self.most, self.live)
            self.events.append(('start', name))
            self.envs[name], self.cmds[name] = env, cmd
        time.sleep(self.hold.get(name, 0.2))
        os.makedirs(os.path.join(work, '20260101_000000', 'vis_data'), exist_ok=True)
        with open(os.path.join(work, 'last_checkpoint'), 'w') as f:
            f.write(os.path.join(work, 'epoch_1.pth'))
        with open(os.path.join(work, '20260101_000000', 'vis_data', 'scalars.json'), 'w') as f:
            f.write(json.dumps({'student0/mIoU': 40.0 + len(name), 'step': 1}) + '\n')
        with self.lock:
            self.live -= 1
            self.events.append(('end', name))
        return type('Done', (), {'returncode': 1 if name in self.fail else 0})()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'c.py'
    path.write_text('model = dict(type="X")\n')
    return str(path)


def quiet(*args, **kwargs):
    pass


def test_jobs_train_side_by_side_and_offline_runs_wait_for_their_teacher(
        config, tmp_path, monkeypatch):
    fake = FakeTrain(hold={'teacher_s0': 0.4})
    monkeypatch.setattr(experiment.subprocess, 'run', fake)
    runs = [Run('teacher_s0', config, group='teacher'),
            Run('offline_s0', config, options=['model.teacher_ckpt={after}'],
                group='offline', after='teacher_s0'),
            Run('alone_s0', config, group='alone'),
            Run('alone_s1', config, seed=1, group='alone')]
    out = str(tmp_path / 'out')
    results = execute_all(runs, out, log=quiet, jobs=2)
    assert fake.most == 2  # two at once, never more
    # the offline run starts only after its teacher has ended, though listed second: the
    # free slot went to alone_s0 first
    assert fake.events.index(('start', 'offline_s0')) > fake.events.index(('end', 'teacher_s0'))
    assert fake.events[:2] == [('start', 'teacher_s0'), ('start', 'alone_s0')] or \
        fake.events[:2] == [('start', 'alone_s0'), ('start', 'teacher_s0')]
    teacher_ckpt = os.path.join(out, 'runs', 'teacher_s0', 'work', 'epoch_1.pth')
    assert fake.cmds['offline_s0'][-1] == f'model.teacher_ckpt={teacher_ckpt}'
    assert [r['name'] for r in results] == ['teacher_s0', 'offline_s0', 'alone_s0', 'alone_s1']
    assert [r['metrics']['student0/mIoU'] for r in results] == [50.0, 50.0, 48.0, 48.0]
    with open(os.path.join(out, 'results.json')) as f:
        assert json.load(f) == results
    # a second call trains nothing
    fake.events.clear()
    assert execute_all(runs, out, log=quiet, jobs=2) == results and fake.events == []


def test_each_parallel_run_gets_its_share_of_the_cores(config, tmp_path, monkeypatch):
    fake = FakeTrain(hold={'a_s0': 0.0, 'b_s0': 0.0})
    monkeypatch.setattr(experiment.subprocess, 'run', fake)
    monkeypatch.setattr(experiment.os, 'cpu_count', lambda: 8)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    lines = []
    execute_all([Run('a_s0', config), Run('b_s0', config)], str(tmp_path / 'o1'),
                log=lambda line, **k: lines.append(line), jobs=2)
    for name in ('a_s0', 'b_s0'):
        assert fake.envs[name]['OMP_NUM_THREADS'] == '4'
        assert fake.envs[name]['MKL_NUM_THREADS'] == '4'
        assert fake.envs[name]['PATH'] == os.environ['PATH']  # the rest is inherited
    assert lines[0] == '2 runs at once, 4 thread(s) each (OMP_NUM_THREADS)'
    # a thread count the user set is kept (inherited); one job changes nothing
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    execute_all([Run('a_s0', config)], str(tmp_path / 'o2'), log=quiet, jobs=2)
    assert fake.envs['a_s0'] is None
    monkeypatch.delenv('OMP_NUM_THREADS')
    execute_all([Run('a_s0', config)], str(tmp_path / 'o3'), log=quiet, jobs=1)
    assert fake.envs['a_s0'] is None


def test_a_failed_run_stops_new_runs_and_lets_the_others_finish(config, tmp_path,
                                                                  monkeypatch):
    fake = FakeTrain(hold={'a_s0': 0.05, 'b_s0': 0.5}, fail={'a_s0'})
    monkeypatch.setattr(experiment.subprocess, 'run', fake)
    out = str(tmp_path / 'out')
    runs = [Run('a_s0', config), Run('b_s0', config), Run('c_s0', config)]
    with pytest.raises(RuntimeError, match='run a_s0 failed .exit 1.'):
        execute_all(runs, out, log=quiet, jobs=2)
    assert ('start', 'c_s0') not in fake.events  # nothing started after the failure
    assert fake.events[-1] == ('end', 'b_s0')  # the run under way finished ...
    assert os.path.exists(os.path.join(out, 'runs', 'b_s0', 'result.json'))  # ... and is kept
    assert not os.path.exists(os.path.join(out, 'runs', 'a_s0', 'result.json'))
    assert not os.path.exists(os.path.join(out, 'results.json'))


@pytest.mark.parametrize('jobs', [0, -1, 1.5])
def test_jobs_below_one_are_refused(tmp_path, jobs):
    with pytest.raises(ValueError, match=r'--jobs must be an integer >= 1, got '):
        execute_all([], str(tmp_path), jobs=jobs)


@pytest.mark.parametrize('text', ['0', '-2', '1.5', 'two'])
def test_the_jobs_option_is_checked_when_parsed(text, capsys):
    parser = argparse.ArgumentParser(prog='compare_kdml.py')
    add_jobs_argument(parser)
    assert parser.parse_args(['--jobs', '3']).jobs == 3
    assert parser.parse_args([]).jobs == 1
    with pytest.raises(SystemExit):
        parser.parse_args(['--jobs', text])
    assert f"argument --jobs: must be an integer >= 1, got '{text}'" in capsys.readouterr().err
