import math

import pytest
from mmengine.dataset import DefaultSampler

from mmkd.testing.rank_interleaved_sampler import RankInterleavedSampler


def default_sampler_batches(n, world_size, rank, batch_size, epoch, shuffle):
    """What mmengine's DefaultSampler yields on ``rank`` of ``world_size``, cut in batches."""
    sampler = DefaultSampler(list(range(n)), shuffle=shuffle, seed=3)
    # Set up as __init__ does under a process group of world_size ranks.
    sampler.rank, sampler.world_size = rank, world_size
    sampler.num_samples = math.ceil(n / world_size)
    sampler.total_size = sampler.num_samples * world_size
    sampler.set_epoch(epoch)
    indices = list(sampler)
    return [indices[s:s + batch_size] for s in range(0, len(indices), batch_size)]


class TestRankInterleavedSampler:

    @pytest.mark.parametrize('n,world_size,batch_size,shuffle', [
        (100, 2, 25, True), (20, 2, 5, False), (9, 3, 3, True), (7, 2, 2, True)])
    def test_replays_each_rank_batch_by_batch(self, n, world_size, batch_size, shuffle):
        sampler = RankInterleavedSampler(list(range(n)), world_size=world_size,
                                         batch_size=batch_size, shuffle=shuffle, seed=3)
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            ranks = [default_sampler_batches(n, world_size, r, batch_size, epoch, shuffle)
                     for r in range(world_size)]
            expected = [i for step in zip(*ranks) for batch in step for i in batch]
            assert list(sampler) == expected
            assert len(sampler) == len(expected)

    def test_epochs_differ_when_shuffled(self):
        sampler = RankInterleavedSampler(list(range(20)), batch_size=5, seed=0)
        first = list(sampler)
        sampler.set_epoch(1)
        assert list(sampler) != first and sorted(first) == list(range(20))

    def test_rejects_a_partial_last_batch(self):
        with pytest.raises(ValueError, match='not a multiple of batch_size=3'):
            RankInterleavedSampler(list(range(10)), world_size=2, batch_size=3)
