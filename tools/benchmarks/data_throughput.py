"""Data pipeline images/s (the configs' 2 workers, preprocessing included) over the
images/s the model consumes in training steps, CIFAR-100 and Kvasir-SEG samples."""
import statistics
import time

from mmengine.runner import Runner

from mmkd.testing import scratch_config
from mmkd.utils import set_data_root
from .common import (CIFAR_SAMPLE, KVASIR_CFG, SELF_DISTILL_CFGS, cls_batch, kdml_det,
                     model_from, pskd_epoch_one, side_by_side, train_step_fn, value_row)

NAME = 'data_throughput'


def _images_per_second(loader, batches, preprocess=None):
    start, count = time.perf_counter(), 0
    for i, batch in enumerate(loader):
        if preprocess is not None:
            preprocess(batch, True)
        count += len(batch['inputs'])
        if i + 1 == batches:
            break
    return count / (time.perf_counter() - start)


def _cifar(args):
    cfg, model = model_from(SELF_DISTILL_CFGS[18])
    set_data_root(cfg, CIFAR_SAMPLE)
    cfg.train_dataloader.update(persistent_workers=False)
    model.pskd_memory.allocate(1000)
    pskd_epoch_one()
    loader = Runner.build_dataloader(cfg.train_dataloader)
    pipe = [_images_per_second(loader, 8, model.data_preprocessor) for _ in range(args.reps)]
    step = side_by_side({'step': train_step_fn(model, cls_batch(128))}, args.reps)['step']
    return value_row('CIFAR-100 pipeline / model consumption (img/s)',
                     statistics.median(pipe) * statistics.median(step) / 128, 'x',
                     f'{statistics.median(pipe):.0f} img/s vs '
                     f'{128 / statistics.median(step):.0f} img/s (R18 full method, batch 128)')


def _kvasir(args):
    cfg = scratch_config(KVASIR_CFG)
    set_data_root(cfg, 'data/kvasir_sample')
    cfg.train_dataloader.update(batch_size=4, persistent_workers=False)
    for t in cfg.train_dataloader.dataset.pipeline:
        if t.type == 'Resize':
            t.scale = (args.det_img_size, args.det_img_size)
    loader = Runner.build_dataloader(cfg.train_dataloader)
    pipe = [_images_per_second(loader, 10) for _ in range(max(2, args.reps // 2))]
    model, data = kdml_det(args)
    step = statistics.median(
        side_by_side({'kdml': train_step_fn(model, data)}, max(2, args.reps // 2))['kdml'])
    return value_row('Kvasir-SEG pipeline / model consumption (img/s)',
                     statistics.median(pipe) * step / args.det_batch_size, 'x',
                     f'{statistics.median(pipe):.1f} img/s vs '
                     f'{args.det_batch_size / step:.2f} img/s (V3 KD+ML, '
                     f'{args.det_img_size}px)')


def run(args):
    return [_cifar(args), _kvasir(args)]
