"""Samplers: an endless seeded stream for training and an exact shard for evaluation."""
import torch
from torch.utils.data import Sampler


class InfiniteSampler(Sampler):
    """Endless stream of ``(index, (seed, position))`` over reshuffled epochs.

    Position ``p`` of the global stream goes to process ``p % world_size``; the order and each
    sample's seed depend only on ``(seed, p)``, so starting at ``start`` resumes the stream
    exactly, whatever the number of data-loader workers.
    """

    def __init__(self, num_samples, seed=0, rank=0, world_size=1, start=0):
        if num_samples <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.num_samples = num_samples
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start

    def __iter__(self):
        position = self.start - self.start % self.world_size + self.rank
        if position < self.start:
            position += self.world_size
        epoch, offset = divmod(position, self.num_samples)
        order = self._order(epoch)
        while True:
            while offset >= self.num_samples:
                epoch, offset = epoch + 1, offset - self.num_samples
                order = self._order(epoch)
            yield int(order[offset]), (self.seed, position)
            position += self.world_size
            offset += self.world_size

    def _order(self, epoch):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=generator).tolist()


class ShardSampler(Sampler):
    """Every index exactly once over all processes: ``rank, rank + world_size, ...``.

    Unlike ``DistributedSampler`` it never pads, so no image is counted twice.
    """

    def __init__(self, num_samples, rank=0, world_size=1):
        self.indices = list(range(rank, num_samples, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)
