"""What the benchmark cases share: the configs they build, seeded cls / det batches, the
per-model training step, timing of contenders interleaved repetition by repetition (on the
CPU, or synchronised on a GPU, with peak memory) and the rows of the table."""
import statistics
import time

import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from mmkd.registry import MODELS
from mmkd.testing import scratch_config
from mmkd.utils import set_data_root

SELF_DISTILL_CFGS = {
    18: 'configs/self_distill/pskd-byot-dmflgrad_r18_1xb128-300e_cifar100.py',
    50: 'configs/self_distill/pskd-byot-dmflgrad_r50_1xb128-300e_cifar100.py',
}
BASELINE_CFGS = {
    18: 'configs/self_distill/baseline_r18_1xb128-300e_cifar100.py',
    50: 'configs/self_distill/baseline_r50_1xb128-300e_cifar100.py',
}
CIFAR_SAMPLE = 'data/cifar100_sample'
KDML_CLS_CFG = 'configs/kdml/kdml_r152-to-r50-r34_1xb16-30e_msi.py'
MSI_SAMPLE = 'data/msi_sample'
KVASIR_CFG = 'configs/kvasir_kdml_v3.py'
GFL_BASE = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
DET_PRE = dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)


def device_of(args) -> torch.device:
    return torch.device(getattr(args, 'device', None) or 'cpu')


def build(cfg_model, device='cpu'):
    torch.manual_seed(0)
    model = MODELS.build(cfg_model)
    model.init_weights()
    return model.to(device)


def model_from(cfg_path, device='cpu'):
    cfg = scratch_config(cfg_path)
    return cfg, build(cfg.model, device)


def plain_network(cfg, device='cpu'):
    """The network a user trains without mmkd: the same backbone, global pooling and its
    final classifier only (no exits), cross-entropy, the same preprocessing."""
    return build(dict(type='ImageClassifier', backbone=cfg.model.backbone,
                      num_classes=cfg.model.num_classes,
                      data_preprocessor=cfg.model.data_preprocessor), device)


def pskd_epoch_one():
    """Runtime info of epoch 1 of 300: PS-KD reads and writes its memory from epoch 1 on."""
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 1)
    hub.update_info('max_epochs', 300)


def kdml_cls(args):
    """The classification KD+ML config (V1) on the MSI sample at ``--kdml-img-size``, and its
    distiller."""
    cfg = scratch_config(KDML_CLS_CFG)
    set_data_root(cfg, MSI_SAMPLE)
    for name in ('train_dataloader', 'val_dataloader'):
        cfg[name].dataset.img_size = args.kdml_img_size
        cfg[name].update(num_workers=0, persistent_workers=False)
    return cfg, build(cfg.model)


def kdml_det(args):
    """The detection KD+ML distiller (V3) and a batch at ``--det-batch-size`` and
    ``--det-img-size``."""
    _, model = model_from(KVASIR_CFG)
    return model, det_batch(args.det_batch_size, args.det_img_size)


def gfl(depth):
    """GFL ResNet-``depth`` FPN detector of 1 class, random weights (``init_cfg=None``)."""
    from mmkd.models.distillers.base_kdml_distiller import resolve_model_cfg
    in_channels = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
    return resolve_model_cfg(dict(base=GFL_BASE, backbone=dict(depth=depth, init_cfg=None),
                                  neck=dict(in_channels=in_channels),
                                  bbox_head=dict(num_classes=1)), f'gfl_r{depth}')


def train_step_fn(model, data, constructor='PerModelOptimWrapperConstructor'):
    """A training step as users run it: one optimiser per model of a distiller
    (PerModelOptimWrapperConstructor), one for any other model; ``constructor=
    'DefaultOptimWrapperConstructor'`` gives a distiller one optimiser over all its models."""
    optim = build_optim_wrapper(model, dict(
        constructor=constructor, type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))

    def step():
        return model.train_step(data, optim)

    step.optim_wrapper = optim
    return step


def plain_steps(model, data):
    """``{name: step}``: each model of a KD+ML distiller trained alone on ``data``, with the
    distiller's preprocessor (the same inputs)."""
    steps = {}
    for name, net in model.named_models().items():
        net.data_preprocessor = model.data_preprocessor
        steps[name] = train_step_fn(net, data)
    return steps


def cls_batch(batch_size, size=32, num_classes=100):
    """A seeded uint8 image batch as the classification dataloaders give it (CIFAR by
    default)."""
    g = torch.Generator().manual_seed(0)
    return dict(inputs=torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8,
                                     generator=g),
                data_samples=dict(gt_label=torch.randint(0, num_classes, (batch_size, ),
                                                         generator=g),
                                  sample_idx=torch.arange(batch_size)))


def det_batch(batch_size, size, device=None):
    """A seeded uint8 image batch with one box of class 0 per image, as the detection
    dataloaders give it."""
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
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=g)
    return dict(inputs=images if device is None else images.to(device), data_samples=samples)


def saved_bytes(step):
    """Bytes of the tensors autograd saves for backward in one step (the activations the
    backward pass reads back: a proxy for the step's memory traffic)."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return total[0]


def step_flops(step):
    """Multiply-adds x 2 of one training step (forward and backward), counted by
    ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def leaves(tensors):
    """Detached copies that collect gradients: a term's backward stops at its inputs."""
    return [t.detach().clone().requires_grad_() for t in tensors]


def repeated(fn, times):
    """``fn`` run ``times`` times per call: millisecond terms measured above timer noise."""
    def repeat():
        for _ in range(times):
            fn()
    return repeat


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(contenders: dict, reps: int, warmup: int = 1) -> dict:
    """Run each contender ``warmup + reps`` times, interleaved; seconds per repetition."""
    times = {name: [] for name in contenders}
    for rep in range(warmup + reps):
        for name, fn in contenders.items():
            t = timed(fn)
            if rep >= warmup:
                times[name].append(t)
    return times


def measure(contenders: dict, device: torch.device, reps: int, warmup: int = 1):
    """``(seconds per repetition, peak bytes)`` of each contender. Peak bytes: the most GPU
    memory allocated during one step on CUDA (``max_memory_allocated``); on the CPU, where no
    allocator keeps a peak, the activations autograd saves for backward (the part of a step's
    memory that grows with the number of models), measured once."""
    cuda = device.type == 'cuda'
    times = {name: [] for name in contenders}
    peaks = {}
    for rep in range(warmup + reps):
        for name, step in contenders.items():
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
                peaks[name] = max(peaks.get(name, 0), torch.cuda.max_memory_allocated())
            if rep >= warmup:
                times[name].append(time.perf_counter() - start)
    if not cuda:
        peaks = {name: saved_bytes(step) for name, step in contenders.items()}
    return times, peaks


def summed(times: dict, names) -> list:
    """Per repetition, the sum of the seconds of ``names`` (models trained one by one)."""
    return [sum(ts) for ts in zip(*(times[n] for n in names))]


def memory_label(device: torch.device) -> str:
    return 'peak GPU memory' if device.type == 'cuda' else 'saved activations'


def ratio_row(name, num, den, target=None, detail=''):
    ratios = [a / b for a, b in zip(num, den)]
    median = statistics.median(ratios)
    return dict(name=name, value=median, spread=[min(ratios), max(ratios)], target=target,
                unit='x', met=None if target is None else median <= target,
                detail=(f'{statistics.median(num):.3f}s / {statistics.median(den):.3f}s '
                        f'{detail}').strip())


def value_row(name, value, unit, detail='', spread=None):
    return dict(name=name, value=value, spread=spread, target=None, unit=unit, met=None,
                detail=detail)
