from itertools import islice

import pytest

from bisenet.data.samplers import InfiniteSampler, ShardSampler


def take(sampler, n):
    return list(islice(iter(sampler), n))


def test_items_are_index_and_seed_position():
    items = take(InfiniteSampler(10, seed=3, start=4), 25)
    for offset, (index, key) in enumerate(items):
        assert isinstance(index, int) and 0 <= index < 10
        assert key == (3, 4 + offset)


def test_every_epoch_is_a_permutation():
    indices = [i for i, _ in take(InfiniteSampler(10, seed=1), 40)]
    epochs = [indices[k:k + 10] for k in range(0, 40, 10)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(10))
    assert len({tuple(e) for e in epochs}) > 1


@pytest.mark.parametrize("start", [0, 5, 6, 13])
def test_ranks_interleave_into_the_single_process_stream(start):
    full = take(InfiniteSampler(7, seed=2), 60)
    ranks = [take(InfiniteSampler(7, seed=2, rank=r, world_size=2, start=start), 20) for r in range(2)]
    first = start % 2
    merged = [item for pair in zip(ranks[first], ranks[1 - first]) for item in pair]
    assert merged == full[start:start + 40]


@pytest.mark.parametrize("k", [0, 1, 9, 10, 23])
def test_start_resumes_the_stream(k):
    full = take(InfiniteSampler(10, seed=5), 50)
    assert take(InfiniteSampler(10, seed=5, start=k), 20) == full[k:k + 20]


def test_shard_sampler_covers_each_index_once_without_padding():
    shards = [list(ShardSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert [len(ShardSampler(10, rank=r, world_size=3)) for r in range(3)] == [len(s) for s in shards]
    assert sum(len(s) for s in shards) == 10
    assert sorted(i for s in shards for i in s) == list(range(10))


def test_a_batch_that_does_not_divide_over_the_processes_names_the_key_to_change(tiny_cfg):
    from bisenet.data.loaders import build_train_loader
    from bisenet.errors import UserError

    with pytest.raises(UserError, match=r"train.batch_size=2 does not divide over 3 processes: set train.batch_size "
                                        r"to a multiple of 3"):
        build_train_loader(tiny_cfg, rank=0, world_size=3)
