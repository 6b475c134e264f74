"""The KDMLDistiller step (V1, ResNet-152 -> 50 + 34) over the same step written by
hand in plain PyTorch (the two total losses agree on the first step): in the usual
PyTorch order (zero_grad, backward, step), and, informational, zeroing the gradients
after the step as mmengine's ``OptimWrapper.update_params`` does (the gradients freed
every step come back from the OS as page faults, which the first order avoids)."""
import copy
import resource
import statistics

import torch
import torch.nn.functional as F
import torchvision

from mmkd.models.data_preprocessors.cls_data_preprocessor import per_sample_uniform_ints
from .common import cls_batch, kdml_cls, ratio_row, side_by_side, train_step_fn

NAME = 'kdml_cls_vs_torch'


def _torch_kdml(model, cfg):
    """The KD+ML classification step written in plain PyTorch on torchvision networks with
    the distiller's weights: the same forwards, losses (``KDMLDistiller.loss`` with the
    config's weights) and one SGD step over every parameter."""
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
    def counted():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return counted


def run(args):
    cfg, model = kdml_cls(args)
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
        times = side_by_side({'kdml': _page_faults(train_step_fn(model, data),
                                                   faults['kdml']),
                              'torch': _page_faults(step, faults['torch'])}, args.reps)
        rows.append(ratio_row(
            f'KD+ML step / {label} (cls, V1)', times['kdml'], times['torch'],
            1.05, f'minor page faults/step {statistics.median(faults["kdml"]):.0f} vs '
            f'{statistics.median(faults["torch"]):.0f}; batch 16, {size}px, ResNet-152 -> '
            f'50 + 34, first-step losses {ours:.4f} / {theirs:.4f}'))
    rows[1].update(target=None, met=None)  # informational: the same allocation pattern
    return rows
