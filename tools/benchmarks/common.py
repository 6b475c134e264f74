"""Device-aware timing for the benchmark cases of this folder: step time (synchronised on a
GPU) and peak memory, contenders interleaved repetition by repetition."""
import statistics
import time

import torch
from mmengine.optim import build_optim_wrapper

from mmkd.registry import MODELS
from mmkd.testing import scratch_config


def device_of(args) -> torch.device:
    return torch.device(getattr(args, 'device', None) or 'cpu')


def build(cfg_model, device):
    torch.manual_seed(0)
    model = MODELS.build(cfg_model)
    model.init_weights()
    return model.to(device)


def model_from(cfg_path, device):
    cfg = scratch_config(cfg_path)
    return cfg, build(cfg.model, device)


def train_step_fn(model, data):
    """A training step as users run it: one optimiser per model of a distiller
    (PerModelOptimWrapperConstructor), one for any other model."""
    optim = build_optim_wrapper(model, dict(
        constructor='PerModelOptimWrapperConstructor', type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))
    return lambda: model.train_step(data, optim)


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
