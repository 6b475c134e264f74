"""Where the extra time of the ResNet-18 self-distillation step goes: forward + backward
of each exit branch on its stage map (batch as the step), against the plain step, beside
the exit's share of the plain step's FLOPs and of its saved activations. An exit whose time
share exceeds its FLOP share is bound by memory traffic, not arithmetic."""
import torch

from .common import (SELF_DISTILL_CFGS, cls_batch, model_from, plain_network, ratio_row,
                     saved_bytes, side_by_side, step_flops, train_step_fn)

NAME = 'self_distill_exits'


def run(args):
    data = cls_batch(args.batch_size)
    cfg, full = model_from(SELF_DISTILL_CFGS[18])
    plain = plain_network(cfg)
    with torch.no_grad():
        maps = full.backbone(full.data_preprocessor(data, True)['inputs'])
    steps = {'plain': train_step_fn(plain, data)}
    for i, (head, x) in enumerate(zip(full.exits[:-1], maps), 1):
        x = x.detach().requires_grad_(True)

        def exit_step(head=head, x=x):
            logits, _, feat_map = head(x)
            (logits.sum() + feat_map.sum()).backward()

        steps[f'exit{i}'] = exit_step
    flops = {name: step_flops(fn) for name, fn in steps.items()}
    saved = {name: saved_bytes(fn) for name, fn in steps.items()}
    times = side_by_side(steps, args.reps)
    rows = []
    for i, (head, x) in enumerate(zip(full.exits[:-1], maps), 1):
        name = f'exit{i}'
        rows.append(ratio_row(f'{name} branch fwd+bwd / plain R18 step', times[name],
                              times['plain'], None,
                              f'{flops[name] / flops["plain"]:.1%} of its FLOPs, '
                              f'{saved[name] / saved["plain"]:.1%} of its saved activations, '
                              f'{"patch GEMMs" if head.uses_patch_gemm(x) else "modules"}'))
    return rows
