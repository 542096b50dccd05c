"""End-user address blocks of the lab's networks, on loopback and without root.

Each block is a /24 in 127.230-239.x.0 with `BLOCK_HOSTS` answering hosts (.1 to .4): its hitlist.
They are asked by TCP connects to one port nobody listens on, so each host's RST says it is
there; a dark block's hosts each get a `BlackholeListener` on that port, and connects to them
time out, as when a network's routes are cut. (ICMP cannot be made to fail on loopback without
root: the netns lab, monitor.lab.netns, does that.) On loopback every address of a /24 answers,
so the hitlist is handed to the monitor rather than discovered (`hitlists`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.lab.loopback import BlackholeListener, bind_reserved_port

__all__ = ["BLOCK_HOSTS", "LabBlock", "LabBlocks", "block_prefix"]

BLOCK_HOSTS = 4
_MAX_BLOCKS_PER_NETWORK = 10


def block_prefix(asn: int, index: int) -> ipaddress.IPv4Network:
    """The `index`th end-user /24 of `asn`: 127.(230 + index).(asn % 256).0/24, clear of the
    networks' server prefixes (monitor.lab.topology.network_prefix)."""
    if not 0 <= index < _MAX_BLOCKS_PER_NETWORK:
        raise ValueError(f"a lab network has at most {_MAX_BLOCKS_PER_NETWORK} blocks")
    return ipaddress.IPv4Network(f"127.{230 + index}.{asn % 256}.0/24")


@dataclass(frozen=True)
class LabBlock:
    prefix: str
    asn: int
    country: str
    region: str | None

    @property
    def hosts(self) -> list[str]:
        network = ipaddress.IPv4Network(self.prefix)
        return [str(network[number]) for number in range(1, BLOCK_HOSTS + 1)]


class LabBlocks:
    """The blocks and the listeners that darken them; `start` picks the port."""

    def __init__(self, blocks: Iterable[LabBlock]) -> None:
        listed = list(blocks)
        self.blocks = {block.prefix: block for block in listed}
        if len(self.blocks) != len(listed):
            raise ValueError("two lab blocks share a prefix (networks whose ASNs agree modulo 256)")
        self.port = 0
        self._reserved: socket.socket | None = None
        self._dark: dict[str, list[BlackholeListener]] = {}

    def start(self) -> None:
        if self.blocks and self._reserved is None:
            self._reserved = bind_reserved_port()  # the port stays ours; nothing listens on it
            self.port = self._reserved.getsockname()[1]

    def set_dark(self, prefixes: Iterable[str]) -> None:
        wanted = set(prefixes)
        for prefix in set(self._dark) - wanted:
            for listener in self._dark.pop(prefix):
                listener.close()
        for prefix in wanted - set(self._dark):
            self._dark[prefix] = [BlackholeListener(host, self.port) for host in self.blocks[prefix].hosts]

    @property
    def dark(self) -> set[str]:
        return set(self._dark)

    def hitlists(self) -> dict[str, list[str]]:
        """Each block's answering hosts: what discovery would find on a real network."""
        return {prefix: block.hosts for prefix, block in self.blocks.items()}

    def close(self) -> None:
        self.set_dark(())
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
