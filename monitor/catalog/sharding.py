"""`--shard I/N`: split the catalog over N replicas by rendezvous (highest-random-weight) hashing.

Each target goes to the shard with the highest hash of (shard, name): stable across restarts,
independent of catalog order, and adding a replica moves only the targets the new one wins
(about 1/(N+1) of them). Controls are probed by every shard: each needs its own vantage check.
The `blocks:` entries are split the same way, by prefix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

from monitor.catalog.catalog import Catalog

__all__ = ["Shard", "owner", "parse_shard"]


@dataclasses.dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def owns(self, name: str) -> bool:
        return owner(name, self.count) == self.index

    def select(self, catalog: Catalog) -> Catalog:
        kept = tuple(target for target in catalog.targets if target.is_control or self.owns(target.name))
        blocks = tuple(block for block in catalog.blocks if self.owns(block.prefix))
        return dataclasses.replace(catalog, targets=kept, by_name={}, blocks=blocks)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _weight(shard: int, name: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{shard}\0{name}".encode(), digest_size=8).digest(), "big")


def owner(name: str, count: int) -> int:
    return max(range(count), key=lambda shard: _weight(shard, name))


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"{text!r}: write the shard as I/N with 0 <= I < N, e.g. 0/3")
    return Shard(int(match.group(1)), int(match.group(2)))
