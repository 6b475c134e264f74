"""mmkd/experiments/detector_kd_variants.py: each variant changes exactly its term, mmdet's
LD distiller wraps the same student, the best combination follows the measured means."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.experiments import detector_kd_variants as dkv
from mmkd.experiments.seeded_runs import REPO_ROOT, welch_p
from mmkd.utils import register_all_modules

CONFIG = osp.join(REPO_ROOT, 'configs/fashion_mnist/'
                  'det-kd_gfl-r18w32c32-to-r18w8x2_1xb8-6e_fashion-det-multi.py')


@pytest.fixture(scope='module')
def variants(tmp_path_factory):
    register_all_modules(init_default_scope=False)
    out = str(tmp_path_factory.mktemp('cdk'))
    paths = dkv.write_variant_configs(Config.fromfile(CONFIG), out, True, ['ld', 'cross'])
    return out, {g: Config.fromfile(p) for g, p in paths.items()}


def terms(model):
    return (model.get('ld_weight'), model.get('feature_kd'), model.get('cross_kd'),
            len(model.students), model.get('ml_weight'), model.get('teacher_mode'))


def test_each_single_term_variant_adds_exactly_its_term(variants):
    _, v = variants
    assert list(v) == ['teacher', 'alone', 'mmdet-ld', 'kd', 'kd+ld', 'kd+pkd', 'kd+cwd',
                       'kd+cross', 'best', 'best-ml']
    assert terms(v['kd'].model) == (0.0, None, None, 1, 0.0, 'offline')
    assert terms(v['kd+ld'].model) == (0.25, None, None, 1, 0.0, 'offline')
    assert terms(v['kd+pkd'].model)[1] == dict(type='pkd', weight=1.0)
    assert terms(v['kd+cwd'].model)[1] == dict(type='cwd', weight=1.0, tau=1.0)
    assert terms(v['kd+cross'].model) == (0.0, None, dict(layer=1, weight=1.0), 1, 0.0,
                                          'offline')
    assert terms(v['best'].model) == (0.25, None, dict(layer=1, weight=1.0), 1, 0.0, 'offline')
    assert terms(v['best-ml'].model) == (0.25, None, dict(layer=1, weight=1.0), 2, 0.45,
                                         'offline')
    assert v['alone'].model.teacher is None and len(v['alone'].model.students) == 1
    for group in ('kd', 'kd+ld', 'best-ml', 'mmdet-ld'):  # offline: nothing to ramp
        assert v[group].custom_hooks == []
    for cfg in v.values():  # the same budget everywhere
        assert cfg.train_cfg == v['kd'].train_cfg
        assert cfg.train_dataloader.batch_size == v['kd'].train_dataloader.batch_size


def test_mmdet_ld_wraps_the_same_student_and_the_teacher_run(variants):
    out, v = variants
    ld, student = v['mmdet-ld'].model, v['alone'].model.students[0]
    assert ld.type == 'KnowledgeDistillationSingleStageDetector'
    assert ld.bbox_head.type == 'LDHead'
    assert ld.bbox_head.loss_ld == dict(type='KnowledgeDistillationKLDivLoss', loss_weight=0.25,
                                        T=10)
    assert ld.backbone == student.backbone and ld.neck == student.neck
    assert ld.teacher_config == osp.abspath(osp.join(out, 'configs', 'teacher.py'))
    assert Config.fromfile(ld.teacher_config).model == v['teacher'].model
    assert v['mmdet-ld'].val_evaluator.model_name == 'student0'
    # the teacher of the comparison: 32-channel FPN and head, as the students
    assert v['teacher'].model.neck.out_channels == 32 == student.neck.out_channels


def test_every_run_but_the_student_alone_waits_for_its_seeds_teacher(variants):
    out, _ = variants
    paths = {g: f'{g}.py' for g in ['teacher', *dkv.SINGLE]}
    runs = dkv.comparison_runs(paths, [3], dkv.SINGLE)
    assert [r.name for r in runs] == ['teacher_s3'] + [f'{g}_s3' for g in dkv.SINGLE]
    for run in runs[1:]:
        waits = run.group != 'alone'
        assert (run.after == 'teacher_s3') is waits
        assert (run.options == ['model.teacher_ckpt={after}']) is waits


def test_best_combination_rules(tmp_path):
    def results(means):
        return [dict(group=g, seed=s, metrics={'student0/AP': m + d})
                for g, m in means.items() for s, d in enumerate((-0.5, 0.5))]

    assert dkv.choose_best(results({'kd': 10, 'kd+ld': 11, 'kd+pkd': 9, 'kd+cwd': 10.5,
                                    'kd+cross': 10})) == ['ld', 'cwd']
    assert dkv.choose_best(results({'kd': 10, 'kd+ld': 9, 'kd+pkd': 12, 'kd+cwd': 11,
                                    'kd+cross': 13})) == ['pkd', 'cross']
    assert dkv.choose_best(results({'kd': 10, 'kd+ld': 9, 'kd+pkd': 9, 'kd+cwd': 9,
                                    'kd+cross': 9})) == []
    cfg = Config.fromfile(CONFIG)
    with pytest.raises(ValueError, match='at most one of pkd and cwd'):
        dkv.variant_configs(cfg, str(tmp_path), ['pkd', 'cwd'])
    with pytest.raises(ValueError, match='give terms of'):
        dkv.variant_configs(cfg, str(tmp_path), ['fitnet'])


def test_report_rows_means_and_welch(tmp_path):
    ap = {'alone': [10.0, 12.0, 11.0], 'mmdet-ld': [12.0, 13.0, 14.0], 'kd': [13.0, 14.0, 15.0]}
    results = [dict(group='teacher', seed=s, metrics={'teacher/AP': 20.0 + s, 'teacher/AP50': 30.0,
                                                      'teacher/mIoU': 60.0}) for s in range(3)]
    results += [dict(group=g, seed=s, metrics={'student0/AP': v, 'student0/AP50': 2 * v,
                                               'student0/mIoU': 50.0})
                for g, vals in ap.items() for s, v in enumerate(vals)]
    text = dkv.comparison_report(results)
    assert 'over 3 seeds [0, 1, 2]' in text
    assert '| teacher (trained alone) | 21.00 ± 1.00 | 30.00 ± 0.00 | 60.00 ± 0.00 |  |  |' in text
    p_alone, p_ld = welch_p(ap['kd'], ap['alone']), welch_p(ap['kd'], ap['mmdet-ld'])
    assert (f'| mmkd logit + box KD | 14.00 ± 1.00 | 28.00 ± 2.00 | 50.00 ± 0.00 | '
            f'{p_alone:.3f} | {p_ld:.3f} |') in text
    assert '+ PKD' not in text  # no runs, no row


def test_a_best_combination_of_one_term_reuses_that_terms_runs():
    """Phase 2 trains ``best`` only when it differs from every phase-1 config; a
    combination of one term (or none) is reported from those runs, labelled so."""
    assert dkv.best_alias(['cross']) == 'kd+cross' and dkv.best_alias([]) == 'kd'
    assert dkv.best_alias(['ld', 'cross']) is None
    assert dkv.phase2_groups(['cross']) == dkv.SINGLE + ('best-ml', )
    assert dkv.phase2_groups(['ld', 'cross']) == dkv.SINGLE + ('best', 'best-ml')
    results = [dict(group=g, seed=s, metrics={'student0/AP': v + s, 'student0/AP50': v,
                                              'student0/mIoU': v})
               for g, v in (('alone', 10.0), ('mmdet-ld', 12.0), ('kd', 13.0),
                            ('kd+cross', 15.0), ('best-ml', 16.0)) for s in range(2)]
    text = dkv.comparison_report(results, best=['cross'])
    rows = {line.split(' | ')[0]: line for line in text.splitlines()}
    best = rows['| best combination (kd + cross: the kd+cross runs)']
    assert best.split(' | ')[1:4] == rows['| + cross-head'].split(' | ')[1:4]
    assert best.split(' | ')[1] == '15.50 ± 0.71'
    assert '| best, 2 students + ML (kd + cross) | 16.50 ± 0.71' in text
    # phase 1 alone (best not chosen yet): no best row at all
    assert 'best combination' not in dkv.comparison_report(results[:-2])
