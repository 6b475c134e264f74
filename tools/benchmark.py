"""Benchmarks that print ratios measured side by side in one run (never a timed test).

Each case alternates its contenders repetition by repetition on the same inputs and reports
the median ratio and its spread (min..max over repetitions), so that machine noise hits both
sides alike. Results go to stdout as a table and to ``--out`` as JSON.

    python tools/benchmark.py                  # every case
    python tools/benchmark.py --cases self_distill_step --reps 7
"""
import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time

import mmengine
import torch
from mmengine.logging import MessageHub
from mmengine.runner import Runner

import mmdet
import mmkd
from mmdet.utils import reduce_mean
from mmkd.models.losses import box_kd_loss, ld_kd_loss, sigmoid_kd_loss
from mmkd.models.utils import dense_predictions
from mmkd.registry import MODELS
from mmkd.utils import register_all_modules, set_data_root
from mmkd.testing import scratch_config
from benchmarks.common import cls_batch, det_batch, saved_bytes, train_step_fn
from benchmarks.device_steps import device_steps  # tools/benchmarks/: cases kept apart
from benchmarks.det_feature_kd import det_feature_kd
from benchmarks.kdml_students import kdml_students

SELF_DISTILL_CFGS = {
    18: 'configs/self_distill/pskd-byot-dmflgrad_r18_1xb128-300e_cifar100.py',
    50: 'configs/self_distill/pskd-byot-dmflgrad_r50_1xb128-300e_cifar100.py',
}
SELF_DISTILL_CFG = SELF_DISTILL_CFGS[18]
BASELINE_CFGS = {
    18: 'configs/self_distill/baseline_r18_1xb128-300e_cifar100.py',
    50: 'configs/self_distill/baseline_r50_1xb128-300e_cifar100.py',
}

SAMPLE_ROOT = 'data/cifar100_sample'


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _side_by_side(contenders: dict, reps: int, warmup: int = 1) -> dict:
    """Run each contender ``warmup + reps`` times, interleaved; seconds per repetition."""
    times = {name: [] for name in contenders}
    for rep in range(warmup + reps):
        for name, fn in contenders.items():
            t = _timed(fn)
            if rep >= warmup:
                times[name].append(t)
    return times


def _ratio_row(name, num, den, target, note=''):
    ratios = [a / b for a, b in zip(num, den)]
    return dict(name=name, value=statistics.median(ratios), spread=[min(ratios), max(ratios)],
                target=target, unit='x',
                met=None if target is None else statistics.median(ratios) <= target,
                detail=f'{statistics.median(num):.3f}s / {statistics.median(den):.3f}s {note}'
                .strip())


def _model_from(cfg_path):
    cfg = scratch_config(cfg_path)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


def _plain_network(cfg):
    """The network a user trains without mmkd: the same backbone, global pooling and its
    final classifier only (no exits), cross-entropy, the same preprocessing."""
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ImageClassifier', backbone=cfg.model.backbone,
                              num_classes=cfg.model.num_classes,
                              data_preprocessor=cfg.model.data_preprocessor))
    model.init_weights()
    return model


def _step_flops(step):
    """Multiply-adds x 2 of one training step (forward and backward), counted by
    ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def self_distill_step(args):
    """Self-distillation steps against the plain network a user would train otherwise (the
    backbone and its final classifier), ResNet-18 and ResNet-50, same batch: the full method
    (PS-KD+BYOT+DMFL), the multi-exit baseline (exits built, no loss on them), their ratio
    (paper A's own comparison) and the FLOP ratios, the floor of each."""
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 1)  # PS-KD reads and writes its memory from epoch 1 on
    hub.update_info('max_epochs', 300)
    rows = []
    for depth, batch_size in ((18, args.batch_size), (50, args.r50_batch_size)):
        if batch_size <= 0:
            continue
        data = cls_batch(batch_size)
        cfg, full = _model_from(SELF_DISTILL_CFGS[depth])
        _, base = _model_from(BASELINE_CFGS[depth])
        plain = _plain_network(cfg)
        full.pskd_memory.allocate(50000)
        steps = {'full': train_step_fn(full, data), 'baseline': train_step_fn(base, data),
                 'plain': train_step_fn(plain, data)}
        flops = {name: _step_flops(fn) for name, fn in steps.items()}
        saved = {name: saved_bytes(fn) for name, fn in steps.items()}
        times = _side_by_side(steps, args.reps)
        net = f'R{depth}'
        floor = {n: f'FLOP floor {flops[n] / flops["plain"]:.3f}, saved activations '
                 f'{saved[n] / saved["plain"]:.2f}x' for n in ('full', 'baseline')}
        rows += [
            _ratio_row(f'self-distill step / plain {net} step (CIFAR)', times['full'],
                       times['plain'], 1.15, f'batch {batch_size}, {floor["full"]}'),
            _ratio_row(f'multi-exit baseline step / plain {net} step', times['baseline'],
                       times['plain'], 1.10, f'batch {batch_size}, {floor["baseline"]}'),
            _ratio_row(f'self-distill step / multi-exit baseline ({net})', times['full'],
                       times['baseline'], None, "paper A's comparison (1.27x on its GPU)"),
        ]
        if depth == 18:
            memory = full.pskd_memory.rows
            rows.append(dict(
                name='PS-KD memory per sample (float32, C=100)', unit='bytes',
                value=memory.element_size() * memory.shape[1], target=None, met=None,
                spread=None, detail=f'{memory.numel() * memory.element_size() / 2**20:.1f} '
                'MiB for 50,000 samples'))
        del full, base, plain
    return rows


def self_distill_exits(args):
    """Where the extra time of the ResNet-18 self-distillation step goes: forward + backward
    of each exit branch on its stage map (batch as the step), against the plain step, beside
    the exit's share of the plain step's FLOPs and of its saved activations. An exit whose time
    share exceeds its FLOP share is bound by memory traffic, not arithmetic."""
    data = cls_batch(args.batch_size)
    cfg, full = _model_from(SELF_DISTILL_CFGS[18])
    plain = _plain_network(cfg)
    with torch.no_grad():
        maps = full.backbone(full.data_preprocessor(data, True)['inputs'])
    steps = {'plain': train_step_fn(plain, data)}
    for i, (head, x) in enumerate(zip(full.exits[:-1], maps), 1):
        x = x.detach().requires_grad_(True)

        def exit_step(head=head, x=x):
            logits, _, feat_map = head(x)
            (logits.sum() + feat_map.sum()).backward()

        steps[f'exit{i}'] = exit_step
    flops = {name: _step_flops(fn) for name, fn in steps.items()}
    saved = {name: saved_bytes(fn) for name, fn in steps.items()}
    times = _side_by_side(steps, args.reps)
    rows = []
    for i, (head, x) in enumerate(zip(full.exits[:-1], maps), 1):
        name = f'exit{i}'
        rows.append(_ratio_row(f'{name} branch fwd+bwd / plain R18 step', times[name],
                               times['plain'], None,
                               f'{flops[name] / flops["plain"]:.1%} of its FLOPs, '
                               f'{saved[name] / saved["plain"]:.1%} of its saved activations, '
                               f'{"patch GEMMs" if head.uses_patch_gemm(x) else "modules"}'))
    return rows


def _runner_cfg(work_dir, iters, batch_size):
    cfg = scratch_config(SELF_DISTILL_CFG)
    set_data_root(cfg, SAMPLE_ROOT)
    cfg.train_dataloader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10**9)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    cfg.log_level = 'WARNING'
    cfg.param_scheduler = []
    cfg.work_dir = work_dir
    return cfg


def runner_loop(args):
    """mmkd's Runner train loop over a bare PyTorch loop: same model, loader and batch size.

    The two alternate iteration by iteration: a hook that runs last after each Runner
    iteration times one bare iteration (data loading, preprocessing, forward, backward, SGD
    step); the Runner's own iteration is the time between the end of one bare iteration and
    the end of the next Runner iteration, hooks and logging included.
    """
    iters = args.reps + 1
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner.from_cfg(_runner_cfg(tmp, iters, args.batch_size))
        model = runner.model
        optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        batches = iter(runner.train_dataloader)
        times = dict(runner=[], bare=[])
        marks = [None]

        def bare_iteration():
            data = model.data_preprocessor(next(batches), True)
            loss = sum(v for k, v in model(**data, mode='loss').items() if 'loss' in k)
            optim.zero_grad()
            loss.backward()
            optim.step()

        class Alternate(mmengine.hooks.Hook):

            def before_train(self, runner):
                marks[0] = time.perf_counter()

            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                now = time.perf_counter()
                times['runner'].append(now - marks[0])
                times['bare'].append(_timed(bare_iteration))
                marks[0] = time.perf_counter()

        runner.register_hook(Alternate(), 'LOWEST')
        runner.train()
    run_t, bare_t = times['runner'][1:], times['bare'][1:]  # first iteration: warm-up
    return [_ratio_row('Runner loop / bare PyTorch loop (self-distill R18)', run_t, bare_t,
                       1.05, f'batch {args.batch_size}, {len(run_t)} iterations')]


KDML_CLS_CFG = 'configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py'
MSI_SAMPLE = 'data/msi_sample'


def _kdml_cls(args):
    cfg = scratch_config(KDML_CLS_CFG)
    set_data_root(cfg, MSI_SAMPLE)
    for name in ('train_dataloader', 'val_dataloader'):
        cfg[name].dataset.img_size = args.kdml_img_size
        cfg[name].update(num_workers=0, persistent_workers=False)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


def kdml_cls_step(args):
    """Teacher + 2 students KD+ML step over the sum of the three models' plain steps."""
    cfg, model = _kdml_cls(args)
    size = args.kdml_img_size
    data = cls_batch(16, size, num_classes=2)
    contenders = {'kdml': train_step_fn(model, data)}
    for name, net in zip(model.model_names, [model.teacher, *model.students]):
        # The same network trained alone on the same batch (the distiller's preprocessor).
        net.data_preprocessor = model.data_preprocessor
        contenders[name] = train_step_fn(net, data)
    times = _side_by_side(contenders, args.reps)
    plain = [sum(ts) for ts in zip(*(times[n] for n in model.model_names))]
    return [_ratio_row('KD+ML step / sum of 3 plain steps (cls, V1)', times['kdml'], plain,
                       1.05, f'batch 16, {size}px, ResNet-152 -> 50 + 34')]


def kdml_cls_val(args):
    """One validation loop over teacher + students + ensemble vs the three models evaluated
    one after another (each its own pass over the data, as separate runs would)."""
    from mmengine.evaluator import Evaluator
    cfg, model = _kdml_cls(args)
    model.eval()
    loader = Runner.build_dataloader(cfg.val_dataloader)

    def run(net):
        evaluator = Evaluator(dict(type='MultiModelClsMetric', topk=(1, )))
        for batch in loader:
            evaluator.process(net.val_step(batch), batch)
        return evaluator.evaluate(len(loader.dataset))

    def separately():
        for net in [model.teacher, *model.students]:
            net.data_preprocessor = model.data_preprocessor
            run(net)

    times = _side_by_side({'joint': lambda: run(model), 'separate': separately},
                          max(2, args.reps // 2))
    return [_ratio_row('3-model val loop / 3 models one after another', times['joint'],
                       times['separate'], 1.0, f'{len(loader.dataset)} tiles, '
                       f'{args.kdml_img_size}px')]


KVASIR_CFG = 'configs/kvasir_kdml_v3.py'


def _det_model_and_batch(args):
    cfg = scratch_config(KVASIR_CFG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model, det_batch(args.det_batch_size, args.det_img_size)


def kdml_det_step(args):
    """Teacher + 2 students KD+ML detection step over the sum of the 3 plain steps."""
    model, data = _det_model_and_batch(args)
    preprocess = model.data_preprocessor
    contenders = {'kdml': train_step_fn(model, data)}
    for name, det in model.named_models().items():
        det.data_preprocessor = preprocess  # the same preprocessing, trained alone
        contenders[name] = train_step_fn(det, data)
    times = _side_by_side(contenders, args.reps)
    plain = [sum(ts) for ts in zip(*(times[n] for n in model.model_names))]
    return [_ratio_row('KD+ML step / sum of 3 plain steps (det, V3 GFL)', times['kdml'],
                       plain, 1.10, f'batch {args.det_batch_size}, {args.det_img_size}px, '
                       'DenseNet-201 -> EfficientNet-B0 + B1')]


def _share_row(name, part, whole, target=None, note=''):
    """Per repetition ``part / whole`` in percent; informational without a target."""
    shares = [100 * a / b for a, b in zip(part, whole)]
    value = statistics.median(shares)
    return dict(name=name, value=value, spread=[min(shares), max(shares)], target=target,
                unit='%', met=None if target is None else value <= target,
                detail=f'{1000 * statistics.median(part):.2f} ms / '
                f'{statistics.median(whole):.3f}s {note}'.strip())


def _leaves(tensors):
    """Detached copies that collect gradients: a term's backward stops at its inputs."""
    return [t.detach().clone().requires_grad_() for t in tensors]


def _repeated(fn, times):
    """``fn`` run ``times`` times per call: millisecond terms measured above timer noise."""
    def run():
        for _ in range(times):
            fn()
    return run


def _term_fns(model, name, dense, outs, scale):
    """Forward + backward of each distillation term of ``name`` in a V3 step, from leaf
    copies of its inputs, computed as ``DetKDMLDistiller._distil`` computes them: decoding
    of its head outputs, and cls KD, box KD (with the target confidence, which LD shares)
    and LD against the teacher and each peer."""
    head, own = model.named_models()[name].bbox_head, dense[name]
    targets = [dense['teacher']] + [d for n, d in dense.items()
                                    if n not in ('teacher', name)]
    levels = [_leaves(level) for level in outs[name]]
    check = dense_predictions(head, levels)
    loss = sum({**model._distil(name, 'kd', check, targets[:1], model.kd_weight, scale),
                **model._distil(name, 'ml', check, targets[1:], model.ml_weight, scale)
                }.values())
    upstream = torch.autograd.grad(loss, [check.cls_logits, check.boxes, check.dists])
    s_cls, s_box, s_dist = _leaves([own.cls_logits, own.boxes, own.dists])
    confidence = [t.class_probs().detach().flatten(0, 1).max(1).values for t in targets]
    avg = [reduce_mean(c.sum()) for c in confidence]

    def decode():
        d = dense_predictions(head, levels)
        torch.autograd.backward([d.cls_logits, d.boxes, d.dists], upstream)

    def box_kd():
        losses = []
        for t in targets:
            c = t.class_probs().detach().flatten(0, 1).max(1).values
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


def kdml_det_terms(args):
    """Per model and per term cost of the V3 detection KD+ML step (teacher + 2 students):
    each model's plain step (forward + det loss + backward + SGD), and the forward +
    backward of each student's dense decoding, cls KD, box KD and LD (against the teacher
    and its peer), as shares of that student's plain step; the issue's target: decoding +
    box KD <= 10 % of a student's plain step."""
    model, data = _det_model_and_batch(args)
    model.train()
    x = model.data_preprocessor(data, True)['inputs']
    h, w = x.shape[-2:]
    scale = x.new_tensor([w, h, w, h])
    detectors = model.named_models()
    with torch.no_grad():
        outs = {n: det.bbox_head(det.extract_feat(x)) for n, det in detectors.items()}
    dense = {n: dense_predictions(detectors[n].bbox_head, o) for n, o in outs.items()}
    inner = 20
    contenders = {}
    for name, det in detectors.items():
        det.data_preprocessor = model.data_preprocessor  # trained alone, same preprocessing
        contenders[name] = train_step_fn(det, data)
    levels = [_leaves(level) for level in outs['teacher']]
    # Online, the teacher's decoding is a target only: forward, never a backward.
    contenders['teacher.decode'] = _repeated(
        lambda: dense_predictions(model.teacher.bbox_head, levels), inner)
    students = model.model_names[1:]
    for name in students:
        for term, fn in _term_fns(model, name, dense, outs, scale).items():
            contenders[f'{name}.{term}'] = _repeated(fn, inner)
    times = _side_by_side(contenders, args.reps)
    times.update({k: [t / inner for t in v] for k, v in times.items() if '.' in k})
    setting = f'batch {args.det_batch_size}, {args.det_img_size}px'
    rows = [dict(name=f'V3 {name} plain step (fwd + det loss + bwd + SGD)', unit='s',
                 value=statistics.median(times[name]),
                 spread=[min(times[name]), max(times[name])], target=None, met=None,
                 detail=setting) for name in model.model_names]
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


GFL_BASE = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
DET_PRE = dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)


def _gfl(depth):
    """GFL ResNet-``depth`` FPN detector of 1 class, random weights (``init_cfg=None``)."""
    from mmkd.models.distillers.base_kdml_distiller import resolve_model_cfg
    in_channels = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
    return resolve_model_cfg(dict(base=GFL_BASE, backbone=dict(depth=depth, init_cfg=None),
                                  neck=dict(in_channels=in_channels),
                                  bbox_head=dict(num_classes=1)), f'gfl_r{depth}')


def _ld_pair(tmp):
    """mmkd's offline KD (1 student, no ML) and mmdet's LD distiller
    (``KnowledgeDistillationSingleStageDetector`` + ``LDHead``, as mmdet's
    ``configs/ld/ld_r18-gflv1-r101_fpn_1x_coco.py``) on one GFL R-50 teacher checkpoint and
    the same GFL R-18 student weights."""
    from mmengine.config import Config
    from mmdet.registry import MODELS as MMDET_MODELS
    teacher_cfg, student_cfg = _gfl(50), _gfl(18)
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


def det_vs_mmdet_ld(args):
    """mmkd's offline detection KD (GFL R-50 -> R-18, one student, ml_weight=0) over the
    step of mmdet 3.3's own LD distiller on the same teacher, student and batch."""
    data = det_batch(args.det_batch_size, args.det_img_size)
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = _ld_pair(tmp)
    ours_keys, theirs_keys = _check_same_student_losses(ours, theirs, data)
    times = _side_by_side({'mmkd': train_step_fn(ours, data),
                           'mmdet': train_step_fn(theirs, data)}, args.reps)
    return [_ratio_row('offline det KD step / mmdet LD step (GFL R50->R18)', times['mmkd'],
                       times['mmdet'], 1.10,
                       f'batch {args.det_batch_size}, {args.det_img_size}px; mmkd '
                       f'{"+".join(k[5:] for k in ours_keys)} (KD terms on every location) vs '
                       f'mmdet {"+".join(k[5:] for k in theirs_keys)} (LD on positives)')]


def _torch_kdml(model, cfg):
    """The KD+ML classification step written in plain PyTorch on torchvision networks with
    the distiller's weights: the same forwards, losses (``KDMLDistiller.loss`` with the
    config's weights) and one SGD step over every parameter."""
    import copy
    import torch.nn.functional as F
    import torchvision
    m = cfg.model
    nets = []
    for name, net in model.named_models().items():
        tv = getattr(torchvision.models, net.backbone.arch)(num_classes=net.num_classes)
        state = {k[len('backbone.'):]: v for k, v in net.state_dict().items()
                 if k.startswith('backbone.')}
        state.update({f'fc.{k[len("head."):]}': v for k, v in net.state_dict().items()
                      if k.startswith('head.')})
        tv.load_state_dict(state)
        nets.append(tv.train())
    mean, std = (copy.deepcopy(model.data_preprocessor.mean),
                 copy.deepcopy(model.data_preprocessor.std))
    t2 = m.temperature**2

    def kl(student, target):  # T² · KL(softmax(target / T) ‖ softmax(student / T)), batchmean
        return F.kl_div(F.log_softmax(student / m.temperature, 1),
                        F.softmax(target.detach() / m.temperature, 1),
                        reduction='batchmean') * t2

    def loss(images, flipped, labels):
        x = torch.where(flipped[:, None, None, None], images.flip(-1), images)
        x = (x.float() - mean) / std
        teacher, *students = [net(x) for net in nets]
        total = F.cross_entropy(teacher, labels)
        for k, z in enumerate(students):
            peers = [kl(z, other) for j, other in enumerate(students) if j != k]
            total = total + (m.cls_weight * F.cross_entropy(z, labels) +
                             m.kd_weight * kl(z, teacher) +
                             m.ml_weight * sum(peers) / len(peers))
        return total

    optim = torch.optim.SGD([p for net in nets for p in net.parameters()], lr=0.01,
                            momentum=0.9)
    return loss, optim


def _page_faults(fn, faults):
    """``fn`` that also appends the minor page faults of each call to ``faults``: fresh
    pages from the OS (memory the allocator gave back) cost time in a step."""
    def run():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return run


def kdml_cls_vs_torch(args):
    """The KDMLDistiller step (V1, ResNet-152 -> 50 + 34) over the same step written by
    hand in plain PyTorch (the two total losses agree on the first step): in the usual
    PyTorch order (zero_grad, backward, step), and, informational, zeroing the gradients
    after the step as mmengine's ``OptimWrapper.update_params`` does (the gradients freed
    every step come back from the OS as page faults, which the first order avoids)."""
    from mmkd.models.data_preprocessors.cls_data_preprocessor import per_sample_uniform_ints
    cfg, model = _kdml_cls(args)
    m = cfg.model
    assert (m.teacher_mode, m.peer_kl_direction, m.data_preprocessor.pad) == (
        'online', 'peer_to_self', 0), 'the hand-written step assumes these settings'
    size = args.kdml_img_size
    data = cls_batch(16, size, num_classes=2)
    loss_fn, optim = _torch_kdml(model, cfg)
    # The preprocessor's flips of this batch (its hash of seed, epoch and sample index).
    pre = model.data_preprocessor
    seed = torch.initial_seed() if pre.seed is None else pre.seed
    flipped = per_sample_uniform_ints(seed % 2**31, pre._epoch(),
                                      data['data_samples']['sample_idx'], 2, 2).bool()
    labels = data['data_samples']['gt_label']
    model.train()
    with torch.no_grad():  # no graph kept alive while timing
        ours = sum(model(**model.data_preprocessor(data, True), mode='loss').values()).item()
        theirs = loss_fn(data['inputs'], flipped, labels).item()
    assert abs(ours - theirs) <= 1e-4 * abs(ours), (ours, theirs)

    def torch_step():  # the usual PyTorch order
        loss = loss_fn(data['inputs'], flipped, labels)
        optim.zero_grad()
        loss.backward()
        optim.step()

    def torch_step_zero_last():  # mmengine's order (OptimWrapper.update_params)
        loss_fn(data['inputs'], flipped, labels).backward()
        optim.step()
        optim.zero_grad()

    rows = []
    for label, step in (('hand-written PyTorch step', torch_step),
                        ('same, zero_grad after step', torch_step_zero_last)):
        faults = {'kdml': [], 'torch': []}
        times = _side_by_side({'kdml': _page_faults(train_step_fn(model, data),
                                                    faults['kdml']),
                               'torch': _page_faults(step, faults['torch'])}, args.reps)
        rows.append(_ratio_row(
            f'KD+ML step / {label} (cls, V1)', times['kdml'], times['torch'],
            1.05, f'minor page faults/step {statistics.median(faults["kdml"]):.0f} vs '
            f'{statistics.median(faults["torch"]):.0f}; batch 16, {size}px, ResNet-152 -> '
            f'50 + 34, first-step losses {ours:.4f} / {theirs:.4f}'))
    rows[1].update(target=None, met=None)  # informational: the same allocation pattern
    return rows


def _iou_metric_seconds(num_images, reps):
    """Seconds of DetIoUMetric (mIoU + Acc@0.5, COCO AP off) on ``num_images`` images with
    4 models x 100 boxes each, process (batches of 8, the dicts mmengine's Evaluator hands
    a metric) + evaluate."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from mmkd.registry import METRICS
    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(num_images):
        s = DetDataSample(metainfo=dict(img_id=f'img{i}', ori_shape=(512, 512)))
        s.gt_instances = InstanceData(bboxes=torch.rand(1, 4, generator=g).sort(1).values * 512,
                                      labels=torch.zeros(1, dtype=torch.long))
        preds = {}
        for name in ('teacher', 'student0', 'student1', 'ensemble'):
            boxes = torch.rand(100, 4, generator=g).sort(1).values * 512
            preds[name] = InstanceData(bboxes=boxes, scores=torch.rand(100, generator=g),
                                       labels=torch.zeros(100, dtype=torch.long))
        s.model_preds = preds
        s.pred_instances = preds['ensemble']
        samples.append(s.to_dict())

    def evaluate():
        metric = METRICS.build(dict(type='DetIoUMetric', with_coco=False))
        metric.dataset_meta = dict(classes=('polyp', ))
        for start in range(0, num_images, 8):
            metric.process({}, samples[start:start + 8])
        metric.evaluate(num_images)

    return _side_by_side({'metric': evaluate}, reps)['metric']


def iou_metric_time(args):
    """DetIoUMetric on 10,000 images x 4 models (< 2 s end to end) and on 1,000 (< 1 s)."""
    rows = []
    for n, target in ((10000, 2.0), (1000, 1.0)):
        times = _iou_metric_seconds(n, max(5, args.reps))
        median = statistics.median(times)
        rows.append(dict(name=f'IoU metric time, {n:,} images x 4 models', unit='s',
                         value=median, spread=[min(times), max(times)], target=target,
                         met=median < target,
                         detail='process + evaluate, 100 boxes per model, no COCO AP'))
    return rows


def calibration_metric_time(args):
    """MultiModelClsMetric (top-k, NLL, ECE, AURC, E-AURC) on 10,000 samples x 100 classes."""
    from mmkd.registry import METRICS
    g = torch.Generator().manual_seed(0)
    n, names = 10000, ('exit1', 'exit2', 'exit3', 'exit4', 'ensemble')
    probs = {m: torch.randn(n, 100, generator=g).softmax(1) for m in names}
    labels = torch.randint(0, 100, (n, ), generator=g)

    def evaluate():
        metric = METRICS.build(dict(type='MultiModelClsMetric'))
        for start in range(0, n, 500):
            sl = slice(start, start + 500)
            metric.process({}, [dict(sample_idx=torch.arange(n)[sl], gt_label=labels[sl],
                                     probs={m: p[sl] for m, p in probs.items()})])
        metric.evaluate(n)

    times = _side_by_side({'metric': evaluate}, args.reps)['metric']
    return [dict(name='calibration metrics, 10,000 samples x 5 models', unit='s',
                 value=statistics.median(times), spread=[min(times), max(times)], target=None,
                 met=None, detail='top-1/5, NLL, ECE, AURC, E-AURC per model')]


def _images_per_second(loader, batches, preprocess=None):
    start, count = time.perf_counter(), 0
    for i, batch in enumerate(loader):
        if preprocess is not None:
            preprocess(batch, True)
        count += len(batch['inputs'])
        if i + 1 == batches:
            break
    return count / (time.perf_counter() - start)


def data_throughput(args):
    """Data pipeline images/s (the configs' 2 workers, preprocessing included) over the
    images/s the model consumes in training steps, CIFAR-100 and Kvasir-SEG samples."""
    rows = []
    cfg = scratch_config(SELF_DISTILL_CFG)
    set_data_root(cfg, SAMPLE_ROOT)
    cfg.train_dataloader.update(persistent_workers=False)
    _, model = _model_from(SELF_DISTILL_CFG)
    model.pskd_memory.allocate(1000)
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 1)
    hub.update_info('max_epochs', 300)
    loader = Runner.build_dataloader(cfg.train_dataloader)
    pipe = [_images_per_second(loader, 8, model.data_preprocessor) for _ in range(args.reps)]
    step = _side_by_side({'step': train_step_fn(model, cls_batch(128))}, args.reps)['step']
    rows.append(dict(name='CIFAR-100 pipeline / model consumption (img/s)', unit='x',
                     value=statistics.median(pipe) * statistics.median(step) / 128,
                     spread=None, target=None, met=None,
                     detail=f'{statistics.median(pipe):.0f} img/s vs '
                     f'{128 / statistics.median(step):.0f} img/s (R18 full method, batch 128)'))
    kcfg = scratch_config(KVASIR_CFG)
    set_data_root(kcfg, 'data/kvasir_sample')
    kcfg.train_dataloader.update(batch_size=4, persistent_workers=False)
    for t in kcfg.train_dataloader.dataset.pipeline:
        if t.type == 'Resize':
            t.scale = (args.det_img_size, args.det_img_size)
    kloader = Runner.build_dataloader(kcfg.train_dataloader)
    kpipe = [_images_per_second(kloader, 10) for _ in range(max(2, args.reps // 2))]
    model, data = _det_model_and_batch(args)
    det_step = statistics.median(
        _side_by_side({'kdml': train_step_fn(model, data)}, max(2, args.reps // 2))['kdml'])
    rows.append(dict(name='Kvasir-SEG pipeline / model consumption (img/s)', unit='x',
                     value=statistics.median(kpipe) * det_step / args.det_batch_size,
                     spread=None, target=None, met=None,
                     detail=f'{statistics.median(kpipe):.1f} img/s vs '
                     f'{args.det_batch_size / det_step:.2f} img/s (V3 KD+ML, '
                     f'{args.det_img_size}px)'))
    return rows


def _allgather_worker(rank, port, steps, out):
    import torch.distributed as dist
    from mmkd.models.utils import PSKDMemory
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    memory = PSKDMemory(100)
    memory.allocate(50000)
    idx = torch.arange(128) * 2 + rank
    probs = torch.rand(128, 100).softmax(1)
    times = []
    for _ in range(steps):
        dist.barrier()
        times.append(_timed(lambda: memory.update(idx, probs)))
    if rank == 0:
        torch.save(times, out)
    dist.destroy_process_group()


def pskd_allgather(args):
    """PS-KD memory update with its all-gather of (index, softmax) rows, 2 gloo processes,
    batch 128 per rank, 100 classes: seconds per training step."""
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'times.pt')
        mp.spawn(_allgather_worker, args=(port, 5 + args.reps * 4, out), nprocs=2)
        times = torch.load(out)[5:]
    return [dict(name='PS-KD all-gather + write per step (2 gloo ranks)', unit='ms',
                 value=1000 * statistics.median(times),
                 spread=[1000 * min(times), 1000 * max(times)], target=None, met=None,
                 detail='batch 128 per rank, 100 classes')]


CASES = {
    'self_distill_step': self_distill_step,
    'self_distill_exits': self_distill_exits,
    'runner_loop': runner_loop,
    'kdml_cls_step': kdml_cls_step,
    'kdml_cls_val': kdml_cls_val,
    'kdml_det_step': kdml_det_step,
    'kdml_det_terms': kdml_det_terms,
    'det_vs_mmdet_ld': det_vs_mmdet_ld,
    'kdml_cls_vs_torch': kdml_cls_vs_torch,
    'iou_metric_time': iou_metric_time,
    'calibration_metric_time': calibration_metric_time,
    'pskd_allgather': pskd_allgather,
    'data_throughput': data_throughput,
    'kdml_students': kdml_students,
    'det_feature_kd': det_feature_kd,  # issue 22: PKD, CWD, cross-head step overhead
    'device_steps': device_steps,  # the step rows on --device (GPU): tools/gpu_check.sh
}
DEFAULT_CASES = [case for case in CASES if case != 'device_steps']


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', nargs='+', choices=list(CASES), default=DEFAULT_CASES)
    parser.add_argument('--device', default='cpu',
                        help='device of the kdml_students and device_steps cases (e.g. cuda)')
    parser.add_argument('--reps', type=int, default=7)
    parser.add_argument('--batch-size', type=int, default=128,
                        help='batch of the ResNet-18 self-distillation cases (paper A: 128)')
    parser.add_argument('--r50-batch-size', type=int, default=64,
                        help='batch of the ResNet-50 self-distillation rows (0: skip them)')
    parser.add_argument('--kdml-img-size', type=int, default=112,
                        help='tile size of the classification KD+ML cases (real: 224)')
    parser.add_argument('--det-img-size', type=int, default=256,
                        help='input size of the detection KD+ML case (real: 512)')
    parser.add_argument('--det-batch-size', type=int, default=4)
    parser.add_argument('--out', default='work_dirs/benchmark.json')
    args = parser.parse_args()
    register_all_modules()
    rows = [row for case in args.cases for row in CASES[case](args)]
    print(f'\nmachine: {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, '
          f'CUDA {torch.cuda.is_available()}')
    print(f'versions: torch {torch.__version__}, mmengine {mmengine.__version__}, '
          f'mmdet {mmdet.__version__}, mmkd {mmkd.__version__}\n')
    print(f'{"benchmark":<52} {"median":>9} {"spread":>17} {"target":>8}  met  detail')
    for r in rows:
        spread = f'{r["spread"][0]:.3f}..{r["spread"][1]:.3f}' if r['spread'] else ''
        target = '' if r['target'] is None else (
            f'< {r["target"]}' if r['unit'] == 's' else f'<= {r["target"]}')
        met = {True: 'yes', False: 'NO', None: ''}[r['met']]
        print(f'{r["name"]:<52} {r["value"]:>9.3f} {spread:>17} {target:>8}  {met:<4} '
              f'{r["detail"]}')
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(rows=rows, torch=torch.__version__, cpus=os.cpu_count()), f, indent=1)
    print(f'\nwritten to {args.out}')


if __name__ == '__main__':
    main()
