"""A country behind a chain of routers, in network namespaces (root only): our transit, the
country's border router, its core, and the access router of an end-user network, with hosts
behind it. A router cuts the country off by a route: `blackhole` (silent) or `prohibit` (it
answers "administratively prohibited"), as a censor's router would.

    prober -- transit -- border -- core -- access -- hosts    10.96.0.0/16: the country's hosts
       10.220.0.0/30   .1.0/30    .2.0/30  .3.0/30   .4.0/30

On each link the node nearer the prober is .1, the other .2: a router answers a trace from its
.2 on the link towards the prober (`hop_address`).
Every address exists only inside these namespaces; the prober namespace has no route anywhere
else, so nothing a test or benchmark sends can leave them.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from monitor.lab.netns import Namespaces

__all__ = ["COUNTRY_SPACE", "ROUTERS", "RouterChain"]

ROUTERS = ("transit", "border", "core", "access")
COUNTRY_SPACE = "10.96.0.0/16"
_LINK = "10.220.{}.{}"  # link k joins node k (prober, the routers in order) to node k + 1


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@dataclass
class RouterChain(Namespaces):
    """Create with `RouterChain.build(sites)`; `close()` removes every namespace."""

    nodes: list[str]  # namespaces: the prober, the routers in order, the hosts
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cuts: list[tuple[str, str]] = field(default_factory=list)  # (router, route type)

    @classmethod
    def build(cls, sites: Sequence[str]) -> RouterChain:
        """`sites`: addresses in COUNTRY_SPACE that serve HTTP on port 80."""
        suffix = uuid.uuid4().hex[:6]
        chain = cls(
            [f"path-{role[0]}{index}-{suffix}" for index, role in enumerate(("prober", *ROUTERS, "hosts"))]
        )
        try:
            chain._create()
            chain._wire()
            chain._serve_web(chain.nodes[-1], sites)
        except BaseException:
            chain.close()
            raise
        return chain

    def _wire(self) -> None:
        links = len(self.nodes) - 1
        for link in range(links):
            self._link(link)
        for index, namespace in enumerate(self.nodes):
            if 0 < index < links:
                _run("ip", "netns", "exec", namespace, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            if index > 0:  # towards the prober: the links upstream that are not its own
                _run("ip", "-n", namespace, "route", "add", "default", "via", _LINK.format(index - 1, 1))
            if index < links:  # towards the country: its space and the links downstream
                via = _LINK.format(index, 2)
                _run("ip", "-n", namespace, "route", "add", COUNTRY_SPACE, "via", via)
                for downstream in range(index + 1, links):
                    _run(
                        "ip", "-n", namespace, "route", "add", _LINK.format(downstream, 0) + "/30", "via", via
                    )

    def _link(self, link: int) -> None:
        """A veth pair from node `link` (address .1) to node `link + 1` (address .2)."""
        self._veth((self.nodes[link], _LINK.format(link, 1)), (self.nodes[link + 1], _LINK.format(link, 2)))

    @staticmethod
    def hop_address(router: str) -> str:
        """The address `router` answers a trace from: its side of the link towards the prober."""
        return _LINK.format(ROUTERS.index(router), 2)

    @staticmethod
    def ipasn(asns: Mapping[str, int], hosts_asn: int) -> str:
        """pyasn's IPASN text: each router's link prefix to its ASN, the country's space to the hosts'."""
        lines = [f"{_LINK.format(ROUTERS.index(router), 0)}/30\t{asn}" for router, asn in asns.items()]
        lines.append(f"{_LINK.format(len(ROUTERS), 0)}/30\t{hosts_asn}")
        lines.append(f"{COUNTRY_SPACE}\t{hosts_asn}")
        return "\n".join(lines) + "\n"

    def cut(self, router: str, how: str = "blackhole") -> None:
        """`router` stops forwarding to the country: `blackhole` (silently) or `prohibit`."""
        namespace = self.nodes[1 + ROUTERS.index(router)]
        _run("ip", "-n", namespace, "route", "replace", how, COUNTRY_SPACE)
        self.cuts.append((router, how))

    def restore(self) -> None:
        for router, _ in self.cuts:
            index = 1 + ROUTERS.index(router)
            _run(
                "ip",
                "-n",
                self.nodes[index],
                "route",
                "replace",
                COUNTRY_SPACE,
                "via",
                _LINK.format(index, 2),
            )
        self.cuts.clear()

    def namespaces(self) -> list[str]:
        return list(self.nodes)
