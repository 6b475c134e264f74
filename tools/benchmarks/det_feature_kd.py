"""Step-time overhead of each detection KD term of issue 22 (LD, PKD, CWD, cross-head KD at
the default layer and at layer 1) over a student's plain step: GFL ResNet-50 teacher
(offline, frozen) → one GFL ResNet-18 student, FPN and head at 256 channels (so neither
feature KD nor the cross-head needs an adapter), on ``--device``.

A term's overhead is what it adds to a distillation step: its forward and backward from leaf
copies of the tensors the step has anyway (the student's FPN features or tower features,
the teacher's features and predictions), computed as ``DetKDMLDistiller.loss`` computes it,
as a share of the student's plain step (forward + detection loss + backward + SGD). The
contenders alternate repetition by repetition; a term runs ``INNER`` times per repetition
so that milliseconds stand above the timer's noise. (The difference of two whole distiller
steps was tried first: on 2 CPU cores its noise, ±20 % of a step, buried terms of a few %.)
"""
import os.path as osp
import statistics
import tempfile

import torch

from mmdet.models.utils import unpack_gt_instances
from mmkd.models.losses import ld_kd_loss
from mmkd.models.utils import dense_predictions
from mmkd.models.utils.cross_head import head_from_layer, tower_features
from mmkd.models.utils.positive_locations import record_positives
from .common import (DET_PRE, build, det_batch, device_of, gfl, leaves, measure, repeated,
                     train_step_fn)

NAME = 'det_feature_kd'
INNER = 5
TERMS = {
    'pkd': dict(feature_kd=dict(type='pkd')),
    'cwd': dict(feature_kd=dict(type='cwd', tau=1.0)),
    'cross-head': dict(cross_kd=dict()),           # layer: stacked_convs - 1 (the default)
    'cross-head layer 1': dict(cross_kd=dict(layer=1)),  # the comparison's setting
}


def _term_fns(models, inputs, data_samples):
    """``{term: fn}``: one forward + backward of each term for student 0."""
    base = models['base']
    student, teacher = base.students[0], base.teacher
    scale = base.box_scale(inputs)
    with torch.no_grad():
        t_feats = teacher.extract_feat(inputs)
        t_dense = dense_predictions(teacher.bbox_head, teacher.bbox_head(t_feats))
        s_feats = student.extract_feat(inputs)
        s_outs = student.bbox_head(s_feats)
        s_dense = dense_predictions(student.bbox_head, s_outs)
        # the student's positives, as DetKDMLDistiller.loss reads them (box_region)
        gt, gt_ignore, metas = unpack_gt_instances(data_samples)
        with record_positives(student.bbox_head, len(data_samples)) as found:
            student.bbox_head.loss_by_feat(*s_outs, gt, metas, gt_ignore)
    positives = found.mask if base.box_region == 'positive' else None
    s_feats = leaves(s_feats)
    s_dists = leaves([s_dense.dists])[0]
    confidence = base.box_weights_of(t_dense, positives).flatten(0, 1)

    def ld():
        (base.ld_weight * ld_kd_loss(s_dists.flatten(0, 1), t_dense.dists.flatten(0, 1),
                                     confidence, base.ld_temperature,
                                     avg_factor=confidence.sum())).backward()

    fns = {'ld': ld}

    def features(model):
        def fn():
            out = model._distil_features('student0', {'student0': s_feats, 'teacher': t_feats},
                                         ['student0'])
            sum(out.values()).backward()
        return fn

    def cross(model):
        layer, head = model.cross_kd['layer'], model.teacher.bbox_head
        with torch.no_grad():
            tower = tower_features(student.bbox_head, s_feats, layer)
        tower = [tuple(leaves(level)) if isinstance(level, tuple) else leaves([level])[0]
                 for level in tower]

        def fn():
            pred = dense_predictions(head, head_from_layer(head, tower, layer, frozen=True))
            sum(model._distil('student0', 'cross', pred, [t_dense], model.cross_kd['weight'],
                              scale, positives).values()).backward()
        return fn

    for term, model in models.items():
        if term != 'base':
            fns[term] = features(model) if term in ('pkd', 'cwd') else cross(model)
    return fns


def run(args):
    device = device_of(args)
    data = det_batch(args.det_batch_size, args.det_img_size, device)
    reps = args.reps if device.type == 'cuda' else min(args.reps, 5)
    with tempfile.TemporaryDirectory() as tmp:
        teacher_ckpt = osp.join(tmp, 'teacher.pth')
        torch.manual_seed(0)
        torch.save({'state_dict': build(gfl(50)).state_dict()}, teacher_ckpt)
        common = dict(type='DetKDMLDistiller', teacher=gfl(50), students=[gfl(18)],
                      teacher_mode='offline', teacher_ckpt=teacher_ckpt, ml_weight=0,
                      ld_weight=0.25, data_preprocessor=DET_PRE)
        models = {'base': build(common, device)}
        models.update({term: build({**common, **extra}, device)
                       for term, extra in TERMS.items()})
    base = models['base']
    base.train()
    batch = base.data_preprocessor(data, True)
    student = base.students[0]
    student.data_preprocessor = base.data_preprocessor  # alone, the same inputs
    contenders = {'student': train_step_fn(student, data)}
    terms = _term_fns(models, batch['inputs'], batch['data_samples'])
    contenders.update({term: repeated(fn, INNER) for term, fn in terms.items()})
    times, _ = measure(contenders, device, reps)
    setting = (f'batch {args.det_batch_size}, {args.det_img_size}px, {device.type}, '
               'GFL R50 -> R18 offline, 256 channels')
    rows = []
    for term in terms:
        shares = [100 * t / INNER / s for t, s in zip(times[term], times['student'])]
        value = statistics.median(shares)
        rows.append(dict(name=f'det {term} KD overhead, % of student plain step', unit='%',
                         value=value, spread=[min(shares), max(shares)], target=10.0,
                         met=value <= 10.0,
                         detail=f'{1000 * statistics.median(times[term]) / INNER:.1f} ms fwd+bwd '
                         f'vs student step {statistics.median(times["student"]):.3f}s; '
                         f'{setting}'))
    return rows
