"""Seeded comparisons: result parsing, resumption, statistics and paper B's table form."""
import json
import os

import pytest
from mmengine.config import Config

from mmkd.experiments import seeded_runs as experiment
from mmkd.experiments.kdml_variants import (collapse_check, comparison_report, comparison_runs,
                                            variant_configs)
from mmkd.experiments.seeded_runs import (Run, execute, final_metrics, mean_std, model_table,
                                          welch_p)

CLS_CFG = 'configs/fashion_mnist/kdml_r18w16-to-r18w8x2_1xb64-4e_fashion-mnist.py'
DET_C32_CFG = 'configs/fashion_mnist/det-kd_gfl-r18w32c32-to-r18w8x2_1xb8-6e_fashion-det-multi.py'


def write_scalars(work_dir, rows):
    folder = work_dir / '20261201_000000' / 'vis_data'
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in rows))


def test_final_metrics_is_the_last_validation(tmp_path):
    write_scalars(tmp_path, [
        {'lr': 0.1, 'loss': 2.0, 'step': 1},
        {'ensemble/top1_acc': 50.0, 'step': 1},
        {'lr': 0.1, 'loss': 1.0, 'step': 2},
        {'ensemble/top1_acc': 61.5, 'teacher/top1_acc': 70.0, 'step': 2},
        {'lr': 0.1, 'loss': 0.5, 'step': 3}])
    assert final_metrics(str(tmp_path)) == {'ensemble/top1_acc': 61.5, 'teacher/top1_acc': 70.0}


def test_final_metrics_names_the_folder_without_logs(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        final_metrics(str(tmp_path))


def test_execute_trains_once_then_reads_the_result(tmp_path, monkeypatch):
    calls = []

    def fake_train(cmd, stdout, stderr, cwd, env=None):
        calls.append(cmd)
        work = cmd[cmd.index('--work-dir') + 1]
        os.makedirs(work, exist_ok=True)
        with open(os.path.join(work, 'last_checkpoint'), 'w') as f:
            f.write(os.path.join(work, 'epoch_1.pth'))
        write_scalars(tmp_path / 'out' / 'runs' / 'kd_s3' / 'work', [{'student0/mIoU': 42.0}])
        return type('Done', (), {'returncode': 0})()

    monkeypatch.setattr(experiment.subprocess, 'run', fake_train)
    run = Run('kd_s3', 'cfg.py', options=['a=1'], seed=3, group='kd')
    first = execute(run, str(tmp_path / 'out'))
    second = execute(run, str(tmp_path / 'out'))
    assert len(calls) == 1 and first == second
    assert calls[0][-3:] == ['--cfg-options', 'randomness.seed=3', 'a=1']
    assert first['metrics'] == {'student0/mIoU': 42.0} and first['group'] == 'kd'
    assert first['checkpoint'].endswith('epoch_1.pth')
    experiment.execute_all([run], str(tmp_path / 'out'), log=lambda *a, **k: None)
    with open(tmp_path / 'out' / 'results.json') as f:
        assert json.load(f) == [first] and len(calls) == 1


def test_execute_fills_in_the_teacher_checkpoint(tmp_path, monkeypatch):
    teacher_dir = tmp_path / 'runs' / 'teacher_s0'
    teacher_dir.mkdir(parents=True)
    (teacher_dir / 'result.json').write_text(json.dumps({'checkpoint': '/x/epoch_6.pth'}))
    seen = []

    def fail(cmd, **kwargs):
        seen.append(cmd)
        return type('Failed', (), {'returncode': 3})()

    monkeypatch.setattr(experiment.subprocess, 'run', fail)
    run = Run('kdml-offline_s0', 'c.py', options=['model.teacher_ckpt={after}'],
              after='teacher_s0')
    with pytest.raises(RuntimeError, match='kdml-offline_s0 failed .exit 3.*train.log'):
        execute(run, str(tmp_path))
    assert seen[0][-1] == 'model.teacher_ckpt=/x/epoch_6.pth'


def test_statistics():
    assert mean_std([1.0, 2.0, 3.0]) == '2.00 ± 1.00'
    assert mean_std([0.5], scale=100) == '50.00 ± 0.00'
    # Welch: a = (1, 2, 3), b = (4, 5, 6, 7): t = -3.5 / sqrt(1/3 + 1.6667/4) = -4.041,
    # Welch-Satterthwaite df = 0.75² / ((1/3)²/2 + (1.6667/4)²/3) = 4.96, two-sided p = 0.0101.
    assert welch_p([1, 2, 3], [4, 5, 6, 7]) == pytest.approx(0.0101, abs=2e-4)
    assert experiment.p_cell([1, 2, 3], [4, 5, 6, 7]) == '0.010'
    # (1, 2, 3) against (11, 12, 13): t = -12.25, df 4, p = 2.5e-4
    assert experiment.p_cell([1, 2, 3], [11, 12, 13]) == '< 0.001'
    assert experiment.p_cell([1], [4, 5]) == 'n/a'


def test_variants_change_only_the_model():
    cfg = Config.fromfile(CLS_CFG)
    variants = variant_configs(cfg)
    assert set(variants) == {'teacher', 'alone', 'kd', 'ml', 'kdml', 'kdml-offline'}
    assert variants['teacher'].model.type == 'ImageClassifier'
    assert variants['teacher'].model.backbone.base_channels == 16
    assert variants['teacher'].model.data_preprocessor == cfg.model.data_preprocessor
    assert variants['teacher'].model.name == 'teacher'  # reports teacher/* alone too
    assert variants['alone'].model.teacher is None and variants['alone'].model.ml_weight == 0
    assert variants['kd'].model.ml_weight == 0 and variants['kd'].model.teacher is not None
    assert variants['ml'].model.teacher is None and variants['ml'].model.ml_weight == 0.45
    assert variants['kdml'].model == cfg.model
    assert variants['kdml-offline'].model.teacher_mode == 'offline'
    # the KD/ML ramp stays on every distiller, offline included (its students and peers
    # start random); the teacher trained alone has none
    assert cfg.custom_hooks[0].type == 'DistillScheduleHook'
    assert variants['teacher'].custom_hooks == []
    for name in ('alone', 'kd', 'ml', 'kdml', 'kdml-offline'):
        assert variants[name].custom_hooks == cfg.custom_hooks
    for v in variants.values():
        assert v.train_cfg == cfg.train_cfg and v.train_dataloader == cfg.train_dataloader


@pytest.mark.parametrize('peers', [False, True])
def test_variants_without_a_teacher_drop_its_detector_terms(peers):
    # compare_kdml on a config with cross_kd failed at the students-alone run: 'model.cross_kd
    # needs model.teacher'. Each variant is built here, as its first training step would.
    from mmengine.registry import DefaultScope

    from mmkd.registry import MODELS
    cfg = Config.fromfile(DET_C32_CFG)
    cfg.model.cross_kd = dict(layer=1)
    cfg.model.feature_kd = dict(type='cwd', peers=peers)
    variants = variant_configs(cfg)
    for name in ('kd', 'kdml'):
        assert variants[name].model.cross_kd == dict(layer=1)
        assert variants[name].model.feature_kd.peers is peers
    assert variants['alone'].model.cross_kd is None
    assert variants['alone'].model.feature_kd is None
    assert variants['ml'].model.cross_kd is None
    # mutual learning keeps feature KD between the students when it has them as targets
    assert (variants['ml'].model.feature_kd is None) is not peers
    with DefaultScope.overwrite_default_scope('mmkd'):  # whatever scope a test left
        for name in ('alone', 'ml', 'kd'):
            model = MODELS.build(variants[name].model)
            assert (model.cross_kd is None) is (name != 'kd')


def test_variants_need_an_online_kdml_config():
    cfg = Config.fromfile(CLS_CFG)
    cfg.model.teacher = None
    with pytest.raises(ValueError, match='online KD \\+ ML config'):
        variant_configs(cfg)


def test_runs_put_each_seed_teacher_before_its_offline_run():
    runs = comparison_runs({g: f'{g}.py' for g in ('teacher', 'alone', 'kd', 'ml', 'kdml',
                                                  'kdml-offline')}, [0, 1])
    names = [r.name for r in runs]
    assert names[:6] == ['teacher_s0', 'alone_s0', 'kd_s0', 'ml_s0', 'kdml_s0',
                         'kdml-offline_s0'] and len(runs) == 12
    offline = runs[11]
    assert offline.after == 'teacher_s1' and offline.options == ['model.teacher_ckpt={after}']


def test_variants_train_only_the_named_columns():
    paths = {g: f'{g}.py' for g in ('teacher', 'alone', 'kd', 'ml', 'kdml', 'kdml-offline')}
    runs = comparison_runs(paths, [0, 1], variants=['kdml', 'alone', 'kd'])
    # paper B's order within a seed, whatever order they are named in; no teacher run
    assert [r.name for r in runs] == ['alone_s0', 'kd_s0', 'kdml_s0',
                                      'alone_s1', 'kd_s1', 'kdml_s1']
    # the offline variant brings the teacher it loads
    runs = comparison_runs(paths, [3], variants=['kdml-offline'])
    assert [r.name for r in runs] == ['teacher_s3', 'kdml-offline_s3']
    assert runs[1].after == 'teacher_s3'
    with pytest.raises(ValueError, match='--variants offline: not a variant; choose from '
                       'teacher alone kd ml kdml kdml-offline'):
        comparison_runs(paths, [0], variants=['kd', 'offline'])

def result(group, seed, **metrics):
    return dict(group=group, seed=seed, seconds=1.0, metrics=metrics)


def test_report_is_paper_b_table_2_form():
    results = [result('teacher', s, **{'teacher/acc': 90.0 + s}) for s in (0, 1)]
    for s in (0, 1):
        results += [
            result('alone', s, **{'student0/acc': 80.0, 'ensemble/acc': 81.0}),
            result('kd', s, **{'teacher/acc': 88.0, 'student0/acc': 82.0,
                               'ensemble/acc': 83.0 + s}),
            result('ml', s, **{'student0/acc': 81.0, 'ensemble/acc': 82.0}),
            result('kdml', s, **{'teacher/acc': 89.0, 'student0/acc': 84.0,
                                 'ensemble/acc': 85.0 + 2 * s}),
            result('kdml-offline', s, **{'student0/acc': 83.0, 'ensemble/acc': 84.0 + s})]
    report = comparison_report(results, 1, ['acc'], 'acc')
    lines = report.splitlines()
    assert '| model | students alone | KD | ML | KD + ML (On) | KD + ML (Off) |' in lines
    # the offline column's teacher is the teacher trained alone (90, 91)
    assert ('| teacher | — | 88.00 ± 0.00 | — | 89.00 ± 0.00 | 90.50 ± 0.71 |') in lines
    assert '| ensemble | 81.00 ± 0.00 | 83.50 ± 0.71 | 82.00 ± 0.00 | 86.00 ± 1.41 | ' \
        '84.50 ± 0.71 |' in lines
    assert any(line.startswith('| KD + ML (On) | 86.00 ± 1.41 | 83.50 ± 0.71 | 0.')
               for line in lines)
    assert 'over 2 seeds [0, 1]' in report
    # collapse check: lone teacher 90.50 ± 0.71; online 88 is 3.5 std below, 89 is 2.1 below
    assert '| KD teacher | 88.00 ± 0.00 | 90.50 ± 0.71 | **3.5 std below** |' in lines
    assert '| KD + ML (On) teacher | 89.00 ± 0.00 | 90.50 ± 0.71 | **2.1 std below** |' in lines
    # two seeds leave one other seed per run: no leave-one-out std, nothing flagged
    assert lines[-1].endswith('seeds: none.')



def test_report_of_a_variants_subset_has_its_columns_only():
    results = []
    for s in (0, 1, 2):
        results += [result('alone', s, **{'student0/acc': 80.0, 'ensemble/acc': 80.0 + s}),
                    result('kdml', s, **{'teacher/acc': 89.0, 'student0/acc': 84.0,
                                         'ensemble/acc': 85.0 + s})]
    lines = comparison_report(results, 1, ['acc'], 'acc').splitlines()
    assert '| model | students alone | KD + ML (On) |' in lines
    assert '| ensemble | 81.00 ± 1.00 | 86.00 ± 1.00 |' in lines
    # one Welch row, for the KD + ML variant that ran, no KD side; vs alone t = 6.12, 4 df
    rows = [line for line in lines if line.startswith('| KD + ML')]
    assert rows == ['| KD + ML (On) | 86.00 ± 1.00 | — | n/a | 81.00 ± 1.00 | 0.004 |']
    only_alone = comparison_report(results[::2], 1, ['acc'], 'acc')
    assert "Welch's t-test, ensemble acc: no KD + ML variant was trained." in only_alone

def test_collapse_check_flags_a_run_far_below_its_other_seeds():
    ens = [70.0, 71.0, 72.0, 71.0, 40.0]  # seed 4: others 71.00 ± 0.82, floor 68.55
    results = [result('teacher', s, **{'teacher/acc': 80.0 + s % 2}) for s in range(5)]
    results += [result('kdml', s, **{'teacher/acc': 80.2 + s % 2, 'ensemble/acc': ens[s]})
                for s in range(5)]
    text = collapse_check(results, 'acc', ['teacher', 'ensemble'])
    assert '| KD + ML (On) teacher | 80.60 ± 0.55 | 80.40 ± 0.55 | within one std |' in text
    assert text.endswith('seeds: kdml ensemble seed 4: 40.00 (other seeds 71.00 ± 0.82).')
    results[-1]['metrics']['ensemble/acc'] = 68.6  # just above the floor
    assert collapse_check(results, 'acc', ['teacher', 'ensemble']).endswith('seeds: none.')
    # three seeds leave two others per run: too few for a std, not checked
    three = [r for r in results if r['seed'] >= 2]
    three[-1]['metrics']['ensemble/acc'] = 0.0
    assert collapse_check(three, 'acc', ['teacher', 'ensemble']).endswith('seeds: none.')


def test_model_table_marks_missing_models():
    table = model_table([result('ml', 0, **{'student0/x': 1.0})], ['ml'], ['ML'],
                        ['teacher', 'student0'], 'x')
    assert table.splitlines()[2:] == ['| teacher | — |', '| student0 | 1.00 ± 0.00 |']


def test_dump_config_never_shows_a_half_written_file(tmp_path):
    """Two comparisons into one --out-dir write the same variant configs; a run resolving its
    config meanwhile must read the old or the new file, never a partial one (a seed-2 teacher
    once recorded an empty config that way)."""
    target = tmp_path / 'teacher.py'
    target.write_text('a = 1\n')

    class Cfg:
        def dump(self, path):
            assert target.read_text() == 'a = 1\n'  # still the old file while writing
            with open(path, 'w') as f:
                f.write('a = 2\n')

    assert experiment.dump_config(Cfg(), str(target)) == str(target)
    assert target.read_text() == 'a = 2\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['teacher.py']


def test_resolving_an_empty_config_file_is_refused(tmp_path):
    empty = tmp_path / 'teacher.py'
    empty.write_text('')
    with pytest.raises(ValueError, match=f'{empty} is empty.*teacher_s2'):
        experiment.resolved_run(Run('teacher_s2', str(empty), seed=2))
