"""PS-KD memory update with its all-gather of (index, softmax) rows, 2 gloo processes,
batch 128 per rank, 100 classes: seconds per training step."""
import os
import socket
import statistics
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmkd.models.utils import PSKDMemory
from .common import timed, value_row

NAME = 'pskd_allgather'


def _allgather_worker(rank, port, steps, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    memory = PSKDMemory(100)
    memory.allocate(50000)
    idx = torch.arange(128) * 2 + rank
    probs = torch.rand(128, 100).softmax(1)
    times = []
    for _ in range(steps):
        dist.barrier()
        times.append(timed(lambda: memory.update(idx, probs)))
    if rank == 0:
        torch.save(times, out)
    dist.destroy_process_group()


def run(args):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'times.pt')
        mp.spawn(_allgather_worker, args=(port, 5 + args.reps * 4, out), nprocs=2)
        times = torch.load(out)[5:]
    return [value_row('PS-KD all-gather + write per step (2 gloo ranks)',
                      1000 * statistics.median(times), 'ms', 'batch 128 per rank, 100 classes',
                      [1000 * min(times), 1000 * max(times)])]
