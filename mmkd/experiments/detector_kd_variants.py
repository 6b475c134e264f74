"""The detector-distillation comparison (docs/detector_kd.md, "Measured"): an offline teacher
→ one student at one budget, each of mmkd's terms added alone to logit + box KD, against the
student alone and mmdet's own LD distiller. Used by ``tools/compare_detector_kd.py``.

Runs per seed, in this order (each seed's teacher first; every other run loads it):

* ``teacher`` — the teacher trained alone;
* ``alone`` — student 0 trained alone;
* ``mmdet-ld`` — mmdet's ``KnowledgeDistillationSingleStageDetector`` + ``LDHead`` (the
  peer an mmdet user has), the same teacher checkpoint, LD weight 0.25 and T = 10 as in
  mmdet's LD configs;
* ``kd`` — mmkd's class KD + box KD from the teacher (``ld_weight=0``);
* ``kd+ld``, ``kd+pkd``, ``kd+cwd``, ``kd+cross`` — one term added to ``kd``;
* ``best`` — ``kd`` plus every term whose mean AP over the seeds beat ``kd``'s (of PKD and
  CWD, which share ``feature_kd``, the better one), chosen after the single-term runs of all
  seeds, or given with ``--best``; when that is no term or one term, the ``best`` row is the
  ``kd`` or ``kd+<term>`` runs themselves (the same config and seeds: no second training);
* ``best-ml`` — ``best`` with both students of the config and mutual learning.

Offline runs do not ramp (the teacher is trained); the student's schedule, data and seed
handling are the config's in every run.
"""
import copy
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

from mmkd.export.students import name_lone_model
from mmkd.utils.pretrained import from_scratch
from .kdml_variants import _with_model
from .seeded_runs import Run, collect, dump_config, markdown_table, mean_std, p_cell

# term -> the model settings it adds to ``kd`` (weights: docs/detector_kd.md's defaults)
TERMS = {
    'ld': dict(ld_weight=0.25),
    'pkd': dict(feature_kd=dict(type='pkd', weight=1.0)),
    'cwd': dict(feature_kd=dict(type='cwd', weight=1.0, tau=1.0)),
    'cross': dict(cross_kd=dict(layer=1, weight=1.0)),
}
VARIANTS = (('alone', 'student alone'), ('mmdet-ld', "mmdet's LD distiller"),
            ('kd', 'mmkd logit + box KD'), ('kd+ld', '+ LD'), ('kd+pkd', '+ PKD'),
            ('kd+cwd', '+ CWD'), ('kd+cross', '+ cross-head'), ('best', 'best combination'),
            ('best-ml', 'best, 2 students + ML'))
SINGLE = ('alone', 'mmdet-ld', 'kd', 'kd+ld', 'kd+pkd', 'kd+cwd', 'kd+cross')


def _kd_model(model: dict, terms: Sequence[str], students: int = 1) -> dict:
    out = dict(model, students=list(model['students'][:students]), teacher_mode='offline',
               teacher_ckpt='<teacher run of the same seed>', ld_weight=0.0, feature_kd=None,
               cross_kd=None, ml_weight=model.get('ml_weight', 0.45) if students > 1 else 0.0)
    for term in terms:
        out.update(copy.deepcopy(TERMS[term]))
    return out


def _mmdet_ld_model(student: dict, model: dict, teacher_config: str) -> dict:
    """mmdet's LD distiller around student 0's detector (a GFL detector)."""
    ld = copy.deepcopy(student)
    if ld.get('type', '').split('.')[-1] != 'GFL':
        raise ValueError(f"mmdet's LD distiller needs a GFL student; model.students[0] is "
                         f"{ld.get('type')}")
    ld['type'] = 'KnowledgeDistillationSingleStageDetector'
    ld['bbox_head'] = dict(ld['bbox_head'], type='LDHead', loss_ld=dict(
        type='KnowledgeDistillationKLDivLoss', loss_weight=0.25, T=10))
    ld['teacher_config'] = teacher_config
    ld['teacher_ckpt'] = '<teacher run of the same seed>'
    if model.get('data_preprocessor') is not None:
        ld['data_preprocessor'] = copy.deepcopy(model['data_preprocessor'])
    return ld


def variant_configs(cfg: Config, out_dir: str, best: Sequence[str] = ()) -> Dict[str, Config]:
    """``{group: config}`` for every group of :data:`VARIANTS` (``best`` and ``best-ml``
    only when ``best`` is given) and the teacher. ``cfg`` is a ``DetKDMLDistiller`` config
    with a teacher and ≥ 1 student (2 for ``best-ml``)."""
    from mmkd.models.distillers import resolve_model_cfg
    from .kdml_variants import variant_configs as kdml_variants
    model = cfg.model
    if model.get('type', '').split('.')[-1] != 'DetKDMLDistiller' or not model.get('teacher'):
        raise ValueError('the detector-KD comparison starts from a DetKDMLDistiller config '
                         'with model.teacher set')
    unknown = sorted(set(best) - set(TERMS))
    if unknown or ('pkd' in best and 'cwd' in best):
        raise ValueError(f'--best {" ".join(best)}: give terms of {", ".join(TERMS)}, '
                         'at most one of pkd and cwd (both are model.feature_kd)')
    online = dict(model, teacher_mode='online', teacher_ckpt=None)
    paper_b = kdml_variants(_with_model(cfg, online))
    out = {'teacher': paper_b['teacher'], 'alone': copy.deepcopy(paper_b['alone'])}
    out['alone'].model['students'] = out['alone'].model['students'][:1]
    teacher_path = osp.abspath(osp.join(out_dir, 'configs', 'teacher.py'))
    student = resolve_model_cfg(model['students'][0], 'model.students[0]')
    out['mmdet-ld'] = _with_model(cfg, _mmdet_ld_model(student, model, teacher_path),
                                  ramp=False)
    name_lone_model(out['mmdet-ld'], 'student0')
    out['kd'] = _with_model(cfg, _kd_model(model, []), ramp=False)
    for term in TERMS:
        out[f'kd+{term}'] = _with_model(cfg, _kd_model(model, [term]), ramp=False)
    if best:
        out['best'] = _with_model(cfg, _kd_model(model, best), ramp=False)
        if len(model['students']) < 2:
            raise ValueError('best-ml needs two students in model.students')
        out['best-ml'] = _with_model(cfg, _kd_model(model, best, students=2), ramp=False)
    return out


def write_variant_configs(cfg: Config, out_dir: str, scratch: bool,
                          best: Sequence[str] = ()) -> Dict[str, str]:
    """Dump :func:`variant_configs` under ``<out_dir>/configs``; returns group → path."""
    cfg = copy.deepcopy(cfg)
    if scratch:
        from_scratch(cfg)
    os.makedirs(osp.join(out_dir, 'configs'), exist_ok=True)
    paths = {}
    for group, variant in variant_configs(cfg, out_dir, best).items():
        paths[group] = osp.join(out_dir, 'configs', f'{group}.py')
        dump_config(variant, paths[group])
    return paths


def comparison_runs(paths: Dict[str, str], seeds: Sequence[int],
                    groups: Sequence[str]) -> List[Run]:
    """The runs of ``groups`` for every seed, each seed's teacher first."""
    runs = []
    for seed in seeds:
        teacher = Run(f'teacher_s{seed}', paths['teacher'], seed=seed, group='teacher')
        runs.append(teacher)
        for group in groups:
            offline = group not in ('alone', )
            runs.append(Run(f'{group}_s{seed}', paths[group], seed=seed, group=group,
                            options=['model.teacher_ckpt={after}'] if offline else [],
                            after=teacher.name if offline else None))
    return runs


def best_alias(best: Sequence[str]) -> Optional[str]:
    """The phase-1 group whose config *is* the best combination (``kd`` for no term,
    ``kd+<term>`` for one), or None when the combination needs runs of its own."""
    if len(best) > 1:
        return None
    return f'kd+{best[0]}' if best else 'kd'


def phase2_groups(best: Sequence[str]) -> tuple:
    """The groups phase 2 trains: the single-term ones (cached) and ``best`` unless
    :func:`best_alias` names a phase-1 group, then ``best-ml``."""
    return SINGLE + (('best', ) if best_alias(best) is None else ()) + ('best-ml', )


def choose_best(results: Sequence[dict], metric: str = 'AP') -> List[str]:
    """The terms whose mean student-0 ``metric`` beat ``kd``'s (of PKD and CWD the better)."""
    def mean(group):
        values = collect(results, group, f'student0/{metric}')
        return sum(values) / len(values) if values else float('-inf')

    base = mean('kd')
    best = [t for t in TERMS if mean(f'kd+{t}') > base]
    if 'pkd' in best and 'cwd' in best:
        best.remove('pkd' if mean('kd+pkd') < mean('kd+cwd') else 'cwd')
    return best


def comparison_report(results: Sequence[dict], metrics: Sequence[str] = ('AP', 'AP50', 'mIoU'),
                      best: Optional[Sequence[str]] = None) -> str:
    """Student 0 of each variant (mean ± std over seeds) and Welch's p of its first metric
    against the student alone and against mmdet's LD distiller; the teacher's row above."""
    seeds = sorted({r['seed'] for r in results})
    first = metrics[0]
    alone = collect(results, 'alone', f'student0/{first}')
    ld = collect(results, 'mmdet-ld', f'student0/{first}')

    def cell(values):
        return mean_std(values) if values else '—'

    rows = [['teacher (trained alone)'] +
            [cell(collect(results, 'teacher', f'teacher/{m}')) for m in metrics] + ['', '']]
    alias = best_alias(best) if best is not None else None
    for group, label in VARIANTS:
        source = alias if group == 'best' and alias else group
        values = collect(results, source, f'student0/{first}')
        if not values:
            continue
        if group in ('best', 'best-ml'):
            label += f' (kd + {" + ".join(best)}' if best else ' (= kd'
            label += f': the {source} runs)' if source != group else ')'
        rows.append([label] + [cell(collect(results, source, f'student0/{m}'))
                               for m in metrics] +
                    [p_cell(values, alone) if group != 'alone' else '',
                     p_cell(values, ld) if group != 'mmdet-ld' else ''])
    header = ['student 0'] + [f'{m} (%)' for m in metrics] + [
        f'p ({first}) vs alone', f"p ({first}) vs mmdet's LD"]
    return (f'Offline teacher → student 0, mean ± std over {len(seeds)} seeds {seeds}; '
            f"Welch's t-test p of each row's {first}:\n\n" + markdown_table(header, rows))
