"""mmkd's offline detection KD (GFL R-50 -> R-18, one student, ml_weight=0) over the
step of mmdet 3.3's own LD distiller on the same teacher, student and batch."""
import os
import tempfile

import torch
from mmengine.config import Config

from mmdet.registry import MODELS as MMDET_MODELS
from mmkd.registry import MODELS
from .common import DET_PRE, det_batch, gfl, ratio_row, side_by_side, train_step_fn

NAME = 'det_vs_mmdet_ld'


def _ld_pair(tmp):
    """mmkd's offline KD (1 student, no ML) and mmdet's LD distiller
    (``KnowledgeDistillationSingleStageDetector`` + ``LDHead``, as mmdet's
    ``configs/ld/ld_r18-gflv1-r101_fpn_1x_coco.py``) on one GFL R-50 teacher checkpoint and
    the same GFL R-18 student weights."""
    teacher_cfg, student_cfg = gfl(50), gfl(18)
    torch.manual_seed(1)
    teacher = MMDET_MODELS.build(teacher_cfg)
    teacher.init_weights()
    ckpt, teacher_file = os.path.join(tmp, 'teacher.pth'), os.path.join(tmp, 'teacher.py')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    Config(dict(model=teacher_cfg.to_dict())).dump(teacher_file)
    torch.manual_seed(0)
    ours = MODELS.build(dict(type='DetKDMLDistiller', teacher=teacher_cfg,
                             students=[student_cfg], teacher_mode='offline',
                             teacher_ckpt=ckpt, ml_weight=0.0, data_preprocessor=DET_PRE))
    ours.init_weights()
    ld_cfg = dict(student_cfg, type='KnowledgeDistillationSingleStageDetector',
                  teacher_config=teacher_file, teacher_ckpt=ckpt, data_preprocessor=DET_PRE)
    ld_cfg['bbox_head'] = dict(student_cfg['bbox_head'], type='LDHead', loss_ld=dict(
        type='KnowledgeDistillationKLDivLoss', loss_weight=0.25, T=10))
    ld_cfg.pop('init_cfg', None)
    theirs = MMDET_MODELS.build(ld_cfg)
    theirs.load_state_dict(ours.students[0].state_dict())  # the same student weights
    theirs.train()  # mmdet's override returns None
    return ours.train(), theirs


def _check_same_student_losses(ours, theirs, data):
    """The student's own GFL losses agree on the first step (same weights, same batch):
    QFL equal, GIoU and DFL up to their common normaliser, which mmdet's LDHead does not
    clamp at 1 as GFLHead does (``Σ`` of the positives' scores, below 1 for a fresh head)."""
    with torch.no_grad():
        a = ours(**ours.data_preprocessor(data, True), mode='loss')
        b = theirs(**theirs.data_preprocessor(data, True), mode='loss')
    a = {k.split('.', 1)[1]: torch.stack(v).sum() if isinstance(v, list) else v
         for k, v in a.items()}
    b = {k: torch.stack(v).sum() for k, v in b.items()}  # per-level lists
    torch.testing.assert_close(a['loss_cls'], b['loss_cls'])
    torch.testing.assert_close(a['loss_bbox'] * b['loss_dfl'], b['loss_bbox'] * a['loss_dfl'])
    return sorted(a), sorted(b)


def run(args):
    data = det_batch(args.det_batch_size, args.det_img_size)
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = _ld_pair(tmp)
    ours_keys, theirs_keys = _check_same_student_losses(ours, theirs, data)
    times = side_by_side({'mmkd': train_step_fn(ours, data),
                          'mmdet': train_step_fn(theirs, data)}, args.reps)
    return [ratio_row('offline det KD step / mmdet LD step (GFL R50->R18)', times['mmkd'],
                      times['mmdet'], 1.10,
                      f'batch {args.det_batch_size}, {args.det_img_size}px; mmkd '
                      f'{"+".join(k[5:] for k in ours_keys)} (KD terms on every location) vs '
                      f'mmdet {"+".join(k[5:] for k in theirs_keys)} (LD on positives)')]
