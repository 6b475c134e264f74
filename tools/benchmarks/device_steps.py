"""The step rows of tools/benchmark.py on ``--device`` (a GPU above all), with memory:
self-distillation step / plain network step (paper A reports 1.27x against its multi-exit
baseline), KD + ML step / sum of the plain steps (classification V1 and detection V3)."""
import statistics

from .common import (BASELINE_CFGS, KDML_CLS_CFG, KVASIR_CFG, SELF_DISTILL_CFGS, cls_batch,
                     det_batch, device_of, measure, memory_label, model_from, plain_network,
                     plain_steps, pskd_epoch_one, ratio_row, summed, train_step_fn, value_row)

NAME = 'device_steps'


def _rows(title, times, peaks, whole, parts, device, detail):
    label = memory_label(device)
    return [
        ratio_row(f'{title} ({device.type})', times[whole], summed(times, parts),
                  detail=detail),
        value_row(f'  {whole} step time', 1000 * statistics.median(times[whole]), 'ms',
                  'plain steps (ms): ' + ', '.join(
                      f'{n} {1000 * statistics.median(times[n]):.1f}' for n in parts)),
        value_row(f'  {whole} {label}', peaks[whole] / 2**20, 'MiB',
                  'plain (MiB): ' + ', '.join(f'{n} {peaks[n] / 2**20:.0f}' for n in parts)),
    ]


def _self_distill(args, device):
    pskd_epoch_one()
    cfg, full = model_from(SELF_DISTILL_CFGS[18], device)
    _, base = model_from(BASELINE_CFGS[18], device)
    plain = plain_network(cfg, device)
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
    contenders = {'kdml': train_step_fn(model, data), **plain_steps(model, data)}
    times, peaks = measure(contenders, device, args.reps)
    return _rows(title, times, peaks, 'kdml', model.model_names, device, detail)


def run(args):
    device = device_of(args)
    rows = _self_distill(args, device) if args.batch_size > 0 else []
    size = args.kdml_img_size
    _, cls = model_from(KDML_CLS_CFG, device)
    rows += _kdml(cls, cls_batch(16, size, 2), args, device, 'KD+ML step / 3 plain steps '
                  '(cls V1)', f'batch 16, {size}px, ResNet-152 -> 50 + 34')
    del cls
    _, det = model_from(KVASIR_CFG, device)
    rows += _kdml(det, det_batch(args.det_batch_size, args.det_img_size), args, device,
                  'KD+ML step / 3 plain steps (det V3 GFL)',
                  f'batch {args.det_batch_size}, {args.det_img_size}px, DenseNet-201 -> '
                  'EfficientNet-B0 + B1')
    return rows
