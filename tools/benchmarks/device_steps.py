"""The step rows of tools/benchmark.py on ``--device`` (a GPU above all), with memory:
self-distillation step / plain network step (paper A reports 1.27x against its multi-exit
baseline), KD + ML step / sum of the plain steps (classification V1 and detection V3)."""
import statistics

from mmengine.logging import MessageHub

from mmkd.testing import scratch_config
from .common import (build, cls_batch, det_batch, device_of, measure, memory_label, model_from,
                     ratio_row, train_step_fn, value_row)
from .kdml_students import KDML_CLS_CFG

SELF_DISTILL_CFG = 'configs/self_distill/pskd-byot-dmflgrad_r18_1xb128-300e_cifar100.py'
BASELINE_CFG = 'configs/self_distill/baseline_r18_1xb128-300e_cifar100.py'
KVASIR_CFG = 'configs/kvasir_kdml_v3.py'


def _rows(title, times, peaks, whole, parts, device, detail):
    plain = [sum(ts) for ts in zip(*(times[n] for n in parts))]
    label = memory_label(device)
    return [
        ratio_row(f'{title} ({device.type})', times[whole], plain, detail=detail),
        value_row(f'  {whole} step time', 1000 * statistics.median(times[whole]), 'ms',
                  'plain steps (ms): ' + ', '.join(
                      f'{n} {1000 * statistics.median(times[n]):.1f}' for n in parts)),
        value_row(f'  {whole} {label}', peaks[whole] / 2**20, 'MiB',
                  'plain (MiB): ' + ', '.join(f'{n} {peaks[n] / 2**20:.0f}' for n in parts)),
    ]


def _self_distill(args, device):
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 1)  # PS-KD reads and writes its memory from epoch 1 on
    hub.update_info('max_epochs', 300)
    cfg, full = model_from(SELF_DISTILL_CFG, device)
    _, base = model_from(BASELINE_CFG, device)
    plain = build(dict(type='ImageClassifier', backbone=cfg.model.backbone,
                       num_classes=cfg.model.num_classes,
                       data_preprocessor=cfg.model.data_preprocessor), device)
    full.pskd_memory.allocate(50000)
    data = cls_batch(args.batch_size, 32, 100)
    steps = {'self-distill': train_step_fn(full, data), 'baseline': train_step_fn(base, data),
             'plain': train_step_fn(plain, data)}
    times, peaks = measure(steps, device, args.reps)
    what = f'R18, batch {args.batch_size}, CIFAR 32px'
    return (_rows('self-distill step / plain R18 step', times, peaks, 'self-distill',
                  ['plain'], device, what)
            + [ratio_row(f'self-distill step / multi-exit baseline ({device.type})',
                         times['self-distill'], times['baseline'],
                         detail="paper A's comparison: 1.27x on its GPU")])


def _kdml(model, data, args, device, title, detail):
    contenders = {'kdml': train_step_fn(model, data)}
    for name, net in model.named_models().items():
        net.data_preprocessor = model.data_preprocessor  # trained alone, same inputs
        contenders[name] = train_step_fn(net, data)
    times, peaks = measure(contenders, device, args.reps)
    return _rows(title, times, peaks, 'kdml', model.model_names, device, detail)


def device_steps(args):
    device = device_of(args)
    rows = _self_distill(args, device) if args.batch_size > 0 else []
    size = args.kdml_img_size
    cls = build(scratch_config(KDML_CLS_CFG).model, device)
    rows += _kdml(cls, cls_batch(16, size, 2), args, device, 'KD+ML step / 3 plain steps '
                  '(cls V1)', f'batch 16, {size}px, ResNet-152 -> 50 + 34')
    del cls
    det = build(scratch_config(KVASIR_CFG).model, device)
    rows += _kdml(det, det_batch(args.det_batch_size, args.det_img_size), args, device,
                  'KD+ML step / 3 plain steps (det V3 GFL)',
                  f'batch {args.det_batch_size}, {args.det_img_size}px, DenseNet-201 -> '
                  'EfficientNet-B0 + B1')
    return rows
