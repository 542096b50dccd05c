from __future__ import annotations

from collections import Counter

import pytest

from monitor.catalog.catalog import parse_catalog
from monitor.catalog.sharding import owner, parse_shard

NAMES = [f"site{index:05d}" for index in range(6000)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_n_replicas_cover_every_target_exactly_once_and_evenly(count: int) -> None:
    shards = [parse_shard(f"{index}/{count}") for index in range(count)]
    owners = Counter(sum(shard.owns(name) for shard in shards) for name in NAMES)
    assert owners == Counter({1: len(NAMES)})
    sizes = Counter(owner(name, count) for name in NAMES)
    assert max(sizes.values()) < 1.15 * len(NAMES) / count


def test_adding_a_replica_moves_only_what_the_new_one_takes() -> None:
    moved = [name for name in NAMES if owner(name, 4) != owner(name, 5)]
    assert all(owner(name, 5) == 4 for name in moved)
    assert 0.15 < len(moved) / len(NAMES) < 0.25


def test_every_shard_keeps_the_controls() -> None:
    catalog = parse_catalog(
        "defaults: {resolvers: ['127.0.0.1:1']}\ntargets:\n"
        + "".join(f"  - {{name: {name}, tcp: 'h:1', country: KZ, category: x}}\n" for name in NAMES[:300])
        + "controls:\n  - {name: control-a, tcp: 'h:1', country: NL, category: control}\n"
    )
    selected = [parse_shard(f"{index}/3").select(catalog) for index in range(3)]
    assert all("control-a" in part.by_name for part in selected)
    assert sum(len(part.targets) - 1 for part in selected) == 300


@pytest.mark.parametrize("text", ["3/3", "1", "-1/2", "a/b", "1/0"])
def test_bad_shards_are_explained(text: str) -> None:
    with pytest.raises(ValueError, match="I/N"):
        parse_shard(text)


def test_blocks_are_split_over_the_shards_by_prefix() -> None:
    entries = "".join(f"  - {{prefix: 10.{index}.0.0/24, asn: 64500, country: KZ}}\n" for index in range(60))
    catalog = parse_catalog(f"blocks:\n{entries}")
    parts = [parse_shard(f"{index}/3").select(catalog).blocks for index in range(3)]
    assert sorted(block.prefix for part in parts for block in part) == sorted(
        b.prefix for b in catalog.blocks
    )
    assert all(parts)
