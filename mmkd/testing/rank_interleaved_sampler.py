"""A single-process replay of what mmengine's ``DefaultSampler`` gives each DDP rank."""
import math
from typing import Iterator, List, Optional, Sized

import torch
from torch.utils.data import Sampler

from mmkd.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class RankInterleavedSampler(Sampler):
    """Yields, for every global step, rank 0's batch, then rank 1's, ... of a DDP run.

    mmengine's ``DefaultSampler`` on ``world_size`` ranks draws one seeded permutation per
    epoch (``torch.randperm`` with seed ``seed + epoch``), pads it to a multiple of
    ``world_size`` by repeating its head, and gives rank ``r`` the slice
    ``indices[r::world_size]``; each rank's dataloader cuts that list into batches of
    ``batch_size``. This sampler, in one process with a dataloader of the same
    ``batch_size``, yields the same indices ordered as
    ``rank 0 batch 0, rank 1 batch 0, ..., rank 0 batch 1, ...``. Training with it and
    ``optim_wrapper.accumulative_counts = world_size`` is, up to floating-point rounding, the
    DDP run: DDP averages the ranks' gradients, accumulation sums the micro-batches' gradients
    of ``loss / world_size``; batch statistics (BatchNorm) are per micro-batch as they are per
    rank. Used by the tests of ``tests/test_distributed``.

    Args:
        dataset (Sized): The dataset.
        world_size (int): Number of DDP ranks replayed. Defaults to 2.
        batch_size (int): Per-rank batch size of the replayed run; must divide the per-rank
            sample count, so that every step has a full batch on every rank. Defaults to 1.
        shuffle (bool): As ``DefaultSampler``. Defaults to True.
        seed (int, optional): As ``DefaultSampler``; the runner passes its seed.
            Defaults to None (0).
    """

    def __init__(self,
                 dataset: Sized,
                 world_size: int = 2,
                 batch_size: int = 1,
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        if world_size < 1 or batch_size < 1:
            raise ValueError('world_size and batch_size must be >= 1, got '
                             f'{world_size} and {batch_size}')
        self.dataset, self.world_size, self.batch_size = dataset, world_size, batch_size
        self.shuffle, self.seed, self.epoch = shuffle, 0 if seed is None else seed, 0
        self.per_rank = math.ceil(len(dataset) / world_size)
        if self.per_rank % batch_size:
            raise ValueError(f'{self.per_rank} samples per rank are not a multiple of '
                             f'batch_size={batch_size}: the last steps would differ')

    def rank_indices(self) -> List[List[int]]:
        """The index list of every rank, exactly as ``DefaultSampler`` (``round_up=True``)."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(len(self.dataset), generator=g).tolist()
        else:
            indices = list(range(len(self.dataset)))
        total = self.per_rank * self.world_size
        indices = (indices * int(total / len(indices) + 1))[:total]
        return [indices[r:total:self.world_size] for r in range(self.world_size)]

    def __iter__(self) -> Iterator[int]:
        per_rank = self.rank_indices()
        for start in range(0, self.per_rank, self.batch_size):
            for rank in range(self.world_size):
                yield from per_rank[rank][start:start + self.batch_size]

    def __len__(self) -> int:
        return self.per_rank * self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Called by ``DistSamplerSeedHook`` before every epoch, as for ``DefaultSampler``."""
        self.epoch = epoch
