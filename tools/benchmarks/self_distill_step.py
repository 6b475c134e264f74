"""Self-distillation steps against the plain network a user would train otherwise (the
backbone and its final classifier), ResNet-18 and ResNet-50, same batch: the full method
(PS-KD+BYOT+DMFL), the multi-exit baseline (exits built, no loss on them), their ratio
(paper A's own comparison) and the FLOP ratios, the floor of each."""
from .common import (BASELINE_CFGS, SELF_DISTILL_CFGS, cls_batch, model_from, plain_network,
                     pskd_epoch_one, ratio_row, saved_bytes, side_by_side, step_flops,
                     train_step_fn, value_row)

NAME = 'self_distill_step'


def run(args):
    pskd_epoch_one()
    rows = []
    for depth, batch_size in ((18, args.batch_size), (50, args.r50_batch_size)):
        if batch_size <= 0:
            continue
        data = cls_batch(batch_size)
        cfg, full = model_from(SELF_DISTILL_CFGS[depth])
        _, base = model_from(BASELINE_CFGS[depth])
        plain = plain_network(cfg)
        full.pskd_memory.allocate(50000)
        steps = {'full': train_step_fn(full, data), 'baseline': train_step_fn(base, data),
                 'plain': train_step_fn(plain, data)}
        flops = {name: step_flops(fn) for name, fn in steps.items()}
        saved = {name: saved_bytes(fn) for name, fn in steps.items()}
        times = side_by_side(steps, args.reps)
        net = f'R{depth}'
        floor = {n: f'FLOP floor {flops[n] / flops["plain"]:.3f}, saved activations '
                 f'{saved[n] / saved["plain"]:.2f}x' for n in ('full', 'baseline')}
        rows += [
            ratio_row(f'self-distill step / plain {net} step (CIFAR)', times['full'],
                      times['plain'], 1.15, f'batch {batch_size}, {floor["full"]}'),
            ratio_row(f'multi-exit baseline step / plain {net} step', times['baseline'],
                      times['plain'], 1.10, f'batch {batch_size}, {floor["baseline"]}'),
            ratio_row(f'self-distill step / multi-exit baseline ({net})', times['full'],
                      times['baseline'], None, "paper A's comparison (1.27x on its GPU)"),
        ]
        if depth == 18:
            memory = full.pskd_memory.rows
            size = memory.element_size()
            rows.append(value_row('PS-KD memory per sample (float32, C=100)',
                                  size * memory.shape[1], 'bytes',
                                  f'{memory.numel() * size / 2**20:.1f} MiB for 50,000 samples'))
        del full, base, plain
    return rows
