"""Step-time overhead of each detection KD term of issue 22 (PKD, CWD, cross-head KD) over
a student's plain step: GFL ResNet-50 teacher (offline, frozen) → one GFL ResNet-18 student,
FPN and head at 256 channels (so the cross-head needs no adapter), on ``--device``.

Contenders, interleaved repetition by repetition: the student's plain step; the distiller
with logit + box KD + LD (feature and cross-head KD off); and that distiller with one more
term. A term's overhead is ``(step with the term − step without) / plain student step``."""
import os.path as osp
import statistics
import tempfile

import torch

from .common import DET_PRE, build, det_batch, device_of, gfl, measure, train_step_fn

NAME = 'det_feature_kd'
TERMS = {
    'pkd': dict(feature_kd=dict(type='pkd', levels=(0, 1, 2))),
    'cwd': dict(feature_kd=dict(type='cwd', tau=1.0, levels=(0, 1, 2))),
    'cross-head': dict(cross_kd=dict(layer=3)),
}


def run(args):
    device = device_of(args)
    data = det_batch(args.det_batch_size, args.det_img_size, device)
    reps = args.reps if device.type == 'cuda' else min(args.reps, 3)
    with tempfile.TemporaryDirectory() as tmp:
        teacher_ckpt = osp.join(tmp, 'teacher.pth')
        torch.manual_seed(0)
        torch.save({'state_dict': build(gfl(50)).state_dict()}, teacher_ckpt)
        common = dict(type='DetKDMLDistiller', teacher=gfl(50), students=[gfl(18)],
                      teacher_mode='offline', teacher_ckpt=teacher_ckpt, ml_weight=0,
                      data_preprocessor=DET_PRE)
        models = {'base': build(common, device)}
        models.update({term: build({**common, **extra}, device)
                       for term, extra in TERMS.items()})
    student = models['base'].students[0]
    student.data_preprocessor = models['base'].data_preprocessor  # alone, same inputs
    contenders = {'student': train_step_fn(student, data)}
    contenders.update({name: train_step_fn(model, data) for name, model in models.items()})
    times, _ = measure(contenders, device, reps)
    setting = (f'batch {args.det_batch_size}, {args.det_img_size}px, {device.type}, '
               'GFL R50 -> R18 offline')
    rows = []
    for term in TERMS:
        shares = [100 * (t - b) / s for t, b, s in zip(times[term], times['base'],
                                                        times['student'])]
        value = statistics.median(shares)
        rows.append(dict(name=f'det {term} KD overhead, % of student plain step', unit='%',
                         value=value, spread=[min(shares), max(shares)], target=10.0,
                         met=value <= 10.0,
                         detail=f'{statistics.median(times[term]):.3f}s vs '
                         f'{statistics.median(times["base"]):.3f}s, student '
                         f'{statistics.median(times["student"]):.3f}s; {setting}'))
    return rows
