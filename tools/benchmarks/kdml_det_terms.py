"""Per model and per term cost of the V3 detection KD+ML step (teacher + 2 students):
each model's plain step (forward + det loss + backward + SGD), and the forward +
backward of each student's dense decoding, cls KD, box KD and LD (against the teacher
and its peer), as shares of that student's plain step; the issue's target: decoding +
box KD <= 10 % of a student's plain step."""
import statistics

import torch

from mmdet.models.utils import unpack_gt_instances
from mmdet.utils import reduce_mean
from mmkd.models.losses import box_kd_loss, ld_kd_loss, sigmoid_kd_loss
from mmkd.models.utils import dense_predictions
from mmkd.models.utils.positive_locations import record_positives
from .common import kdml_det, leaves, plain_steps, repeated, side_by_side, value_row

NAME = 'kdml_det_terms'


def _share_row(name, part, whole, target=None, note=''):
    """Per repetition ``part / whole`` in percent; informational without a target."""
    shares = [100 * a / b for a, b in zip(part, whole)]
    value = statistics.median(shares)
    return dict(name=name, value=value, spread=[min(shares), max(shares)], target=target,
                unit='%', met=None if target is None else value <= target,
                detail=f'{1000 * statistics.median(part):.2f} ms / '
                f'{statistics.median(whole):.3f}s {note}'.strip())


def _term_fns(model, name, dense, outs, scale, positives=None):
    """Forward + backward of each distillation term of ``name`` in a V3 step, from leaf
    copies of its inputs, computed as ``DetKDMLDistiller._distil`` computes them: decoding
    of its head outputs, and cls KD, box KD (with the target confidence inside the model's
    ``box_region``, which LD shares) and LD against the teacher and each peer.
    ``positives``: the student's positive locations (``box_region='positive'``)."""
    head, own = model.named_models()[name].bbox_head, dense[name]
    targets = [dense['teacher']] + [d for n, d in dense.items()
                                    if n not in ('teacher', name)]
    levels = [leaves(level) for level in outs[name]]
    check = dense_predictions(head, levels)
    loss = sum({**model._distil(name, 'kd', check, targets[:1], model.kd_weight, scale,
                                positives),
                **model._distil(name, 'ml', check, targets[1:], model.ml_weight, scale,
                                positives)}.values())
    upstream = torch.autograd.grad(loss, [check.cls_logits, check.boxes, check.dists])
    s_cls, s_box, s_dist = leaves([own.cls_logits, own.boxes, own.dists])
    confidence = [model.box_weights_of(t, positives).flatten(0, 1) for t in targets]
    avg = [reduce_mean(c.sum()) for c in confidence]

    def decode():
        d = dense_predictions(head, levels)
        torch.autograd.backward([d.cls_logits, d.boxes, d.dists], upstream)

    def box_kd():
        losses = []
        for t in targets:
            c = model.box_weights_of(t, positives).flatten(0, 1)
            losses.append(box_kd_loss((s_box / scale).flatten(0, 1),
                                      (t.boxes / scale).flatten(0, 1), c, *model.box_weights,
                                      avg_factor=reduce_mean(c.sum())))
        sum(losses).backward()

    def cls_kd():
        sum(sigmoid_kd_loss(s_cls.flatten(0, 1), t.cls_logits.flatten(0, 1),
                            model.temperature) for t in targets).backward()

    def ld():
        sum(model.ld_weight * ld_kd_loss(s_dist.flatten(0, 1), t.dists.flatten(0, 1), c,
                                         model.ld_temperature, avg_factor=a)
            for t, c, a in zip(targets, confidence, avg)).backward()

    return dict(decode=decode, box_kd=box_kd, cls_kd=cls_kd, ld=ld)


def run(args):
    model, data = kdml_det(args)
    model.train()
    x = model.data_preprocessor(data, True)['inputs']
    scale = model.box_scale(x)
    detectors = model.named_models()
    with torch.no_grad():
        outs = {n: det.bbox_head(det.extract_feat(x)) for n, det in detectors.items()}
    dense = {n: dense_predictions(detectors[n].bbox_head, o) for n, o in outs.items()}
    inner = 20
    contenders = plain_steps(model, data)
    levels = [leaves(level) for level in outs['teacher']]
    # Online, the teacher's decoding is a target only: forward, never a backward.
    contenders['teacher.decode'] = repeated(
        lambda: dense_predictions(model.teacher.bbox_head, levels), inner)
    students = model.model_names[1:]
    # Each student's positives from its own assignment, as DetKDMLDistiller.loss reads them.
    samples = model.data_preprocessor(data, True)['data_samples']
    gt, gt_ignore, metas = unpack_gt_instances(samples)
    positives = dict.fromkeys(students)
    if model.box_region == 'positive':
        for name in students:
            head = detectors[name].bbox_head
            with torch.no_grad(), record_positives(head, len(samples)) as found:
                head.loss_by_feat(*outs[name], gt, metas, gt_ignore)
            positives[name] = found.mask
    for name in students:
        for term, fn in _term_fns(model, name, dense, outs, scale, positives[name]).items():
            contenders[f'{name}.{term}'] = repeated(fn, inner)
    times = side_by_side(contenders, args.reps)
    times.update({k: [t / inner for t in v] for k, v in times.items() if '.' in k})
    setting = f'batch {args.det_batch_size}, {args.det_img_size}px'
    rows = [value_row(f'V3 {name} plain step (fwd + det loss + bwd + SGD)',
                      statistics.median(times[name]), 's', setting,
                      [min(times[name]), max(times[name])]) for name in model.model_names]
    rows.append(_share_row('V3 teacher dense decoding (fwd), % of its step',
                           times['teacher.decode'], times['teacher']))
    for name in students:
        both = [a + b for a, b in zip(times[f'{name}.decode'], times[f'{name}.box_kd'])]
        rows.append(_share_row(f'V3 {name} decoding + box KD, % of plain step', both,
                               times[name], 10.0, 'fwd+bwd, vs teacher and peer'))
        for term, label in (('decode', 'dense decoding'), ('box_kd', 'box KD (+ confidence)'),
                            ('cls_kd', 'cls KD'), ('ld', 'LD')):
            rows.append(_share_row(f'V3 {name} {label}, % of plain step',
                                   times[f'{name}.{term}'], times[name]))
    return rows
