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
import statistics
import tempfile
import time

import mmengine
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

import mmdet
import mmkd
from mmkd.registry import MODELS
from mmkd.utils import register_all_modules, set_data_root
from mmkd.testing import scratch_config

SELF_DISTILL_CFG = 'configs/self_distill/pskd-byot-dmflgrad_r18_1xb128-300e_cifar100.py'
PLAIN_CFG = 'configs/self_distill/baseline_r18_1xb128-300e_cifar100.py'
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
                target=target, unit='x', met=statistics.median(ratios) <= target,
                detail=f'{statistics.median(num):.3f}s / {statistics.median(den):.3f}s {note}'
                .strip())


def _model_from(cfg_path):
    cfg = scratch_config(cfg_path)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


def _cifar_batch(batch_size):
    g = torch.Generator().manual_seed(0)
    return dict(inputs=torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8,
                                     generator=g),
                data_samples=dict(gt_label=torch.randint(0, 100, (batch_size, ), generator=g),
                                  sample_idx=torch.arange(batch_size)))


def _train_step_fn(model, data):
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    return lambda: model.train_step(data, optim)


def self_distill_step(args):
    """PS-KD+BYOT+DMFL ResNet-18 step over the plain ResNet-18 step, same batch."""
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 1)  # PS-KD reads and writes its memory from epoch 1 on
    hub.update_info('max_epochs', 300)
    data = _cifar_batch(args.batch_size)
    _, full = _model_from(SELF_DISTILL_CFG)
    _, plain = _model_from(PLAIN_CFG)
    full.pskd_memory.allocate(50000)
    times = _side_by_side({'full': _train_step_fn(full, data),
                           'plain': _train_step_fn(plain, data)}, args.reps)
    memory = full.pskd_memory.rows
    return [
        _ratio_row('self-distill step / plain step (R18, CIFAR)', times['full'],
                   times['plain'], 1.15, f'batch {args.batch_size}'),
        dict(name='PS-KD memory per sample (float32, C=100)', unit='bytes',
             value=memory.element_size() * memory.shape[1], target=None, met=None,
             spread=None, detail=f'{memory.numel() * memory.element_size() / 2**20:.1f} MiB '
             'for 50,000 samples'),
    ]


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
    g = torch.Generator().manual_seed(0)
    size = args.kdml_img_size
    data = dict(inputs=torch.randint(0, 256, (16, 3, size, size), dtype=torch.uint8,
                                     generator=g),
                data_samples=dict(gt_label=torch.randint(0, 2, (16, ), generator=g),
                                  sample_idx=torch.arange(16)))
    contenders = {'kdml': _train_step_fn(model, data)}
    for name, net in zip(model.model_names, [model.teacher, *model.students]):
        # The same network trained alone on the same batch (the distiller's preprocessor).
        net.data_preprocessor = model.data_preprocessor
        contenders[name] = _train_step_fn(net, data)
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


def _det_batch(model, batch_size, size):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(batch_size):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size), scale_factor=(1.0, 1.0),
                                        batch_input_shape=(size, size)))
        xy = torch.rand(2, generator=g) * size / 2
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + size / 3])[None],
                                      labels=torch.tensor([0]))
        samples.append(s)
    return dict(inputs=torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8,
                                     generator=g), data_samples=samples)


def _det_model_and_batch(args):
    cfg = scratch_config(KVASIR_CFG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model, _det_batch(model, args.det_batch_size, args.det_img_size)


def kdml_det_step(args):
    """Teacher + 2 students KD+ML detection step over the sum of the 3 plain steps."""
    model, data = _det_model_and_batch(args)
    preprocess = model.data_preprocessor
    contenders = {'kdml': _train_step_fn(model, data)}
    for name, det in model.named_models().items():
        det.data_preprocessor = preprocess  # the same preprocessing, trained alone
        contenders[name] = _train_step_fn(det, data)
    times = _side_by_side(contenders, args.reps)
    plain = [sum(ts) for ts in zip(*(times[n] for n in model.model_names))]
    return [_ratio_row('KD+ML step / sum of 3 plain steps (det, V3 GFL)', times['kdml'],
                       plain, 1.10, f'batch {args.det_batch_size}, {args.det_img_size}px, '
                       'DenseNet-201 -> EfficientNet-B0 + B1')]


def _iou_metric_seconds(num_images, reps):
    """Seconds of DetIoUMetric (mIoU + Acc@0.5, COCO AP off) on ``num_images`` images with
    4 models x 100 boxes each, process + compute."""
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
    """DetIoUMetric on 1,000 images (issue target < 1 s) and on 10,000."""
    rows = []
    for n, target in ((1000, 1.0), (10000, None)):
        times = _iou_metric_seconds(n, args.reps if n == 1000 else max(2, args.reps // 2))
        rows.append(dict(name=f'IoU metric time, {n:,} images x 4 models', unit='s',
                         value=statistics.median(times), spread=[min(times), max(times)],
                         target=target,
                         met=None if target is None else statistics.median(times) < target,
                         detail='process + compute, no COCO AP'))
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
    step = _side_by_side({'step': _train_step_fn(model, _cifar_batch(128))}, args.reps)['step']
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
        _side_by_side({'kdml': _train_step_fn(model, data)}, max(2, args.reps // 2))['kdml'])
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
    'runner_loop': runner_loop,
    'kdml_cls_step': kdml_cls_step,
    'kdml_cls_val': kdml_cls_val,
    'kdml_det_step': kdml_det_step,
    'iou_metric_time': iou_metric_time,
    'calibration_metric_time': calibration_metric_time,
    'pskd_allgather': pskd_allgather,
    'data_throughput': data_throughput,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', nargs='+', choices=list(CASES), default=list(CASES))
    parser.add_argument('--reps', type=int, default=5)
    parser.add_argument('--batch-size', type=int, default=128)
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
