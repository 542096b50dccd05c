"""End-user address blocks in network namespaces (root only): a prober namespace, a router, and
behind it a `world` whose blocks answer ICMP and a `tcponly` one that ignores echo requests (its
hosts answer TCP with a RST). Each block is a /24 (or a smaller run of it) on the loopback device
of its namespace, so every address of it answers; the router cuts a block by a blackhole route.

Every address exists only inside these namespaces; the prober namespace has no route anywhere
else, so nothing a test or benchmark sends can leave them.

    prober --(10.210.0.0/30)-- router --(10.210.1.0/30)-- world    10.64.0.0/12: blocks answer ICMP
                                      \\-(10.210.2.0/30)-- tcponly  10.80.0.0/12: icmp_echo_ignore_all
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["BlockWorld", "LabBlock", "Namespaces"]

# each side: its link to the router, and the space routed to it (blocks and sites live there)
_LINKS = {"world": ("10.210.1", "10.64.0.0/12"), "tcponly": ("10.210.2", "10.80.0.0/12")}
_WEB_SERVER = textwrap.dedent("""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers()
            self.wfile.write(b"ok\\n")
        def log_message(self, *args): pass
    ThreadingHTTPServer(("0.0.0.0", 80), Ok).serve_forever()
""")


@dataclass(frozen=True, slots=True)
class LabBlock:
    prefix: str  # the /24 the catalog names
    responsive: str  # the part of it that answers: the /24, a smaller prefix, or "" for none
    side: str = "world"  # or "tcponly"


class Namespaces:
    """Namespaces a test made, the prober (where the monitor runs) first, and the processes it
    started in them."""

    processes: list[subprocess.Popen[bytes]]

    def namespaces(self) -> list[str]:
        raise NotImplementedError

    def _create(self) -> None:
        for namespace in self.namespaces():
            _run("ip", "netns", "add", namespace)
            _run("ip", "-n", namespace, "link", "set", "lo", "up")

    @staticmethod
    def _veth(first: tuple[str, str], second: tuple[str, str]) -> None:
        """A veth pair between two (namespace, address) ends, a /30 between them. Each end gets
        a name of its own: one namespace holds many."""
        ends = {f"v{uuid.uuid4().hex[:8]}": end for end in (first, second)}
        (name, (namespace, _)), (peer, (peer_namespace, _)) = ends.items()
        link = f"link add {name} netns {namespace} type veth peer name {peer} netns {peer_namespace}"
        _run("ip", *link.split())
        for device, (inside, address) in ends.items():
            _run("ip", "-n", inside, "addr", "add", f"{address}/30", "dev", device)
            _run("ip", "-n", inside, "link", "set", device, "up")

    def _serve_web(self, namespace: str, addresses: Sequence[str]) -> None:
        """Each address on the loopback of `namespace`, and a web server there answering them on port 80."""
        for address in addresses:
            _run("ip", "-n", namespace, "addr", "add", f"{address}/32", "dev", "lo")
        command = ["ip", "netns", "exec", namespace, sys.executable, "-c", _WEB_SERVER]
        self.processes.append(subprocess.Popen(command, stderr=subprocess.DEVNULL))

    def in_prober(self, *argv: str) -> list[str]:
        """`argv` run inside the prober namespace."""
        return ["ip", "netns", "exec", self.namespaces()[0], *argv]

    def get(self, url: str, timeout: float = 30.0) -> str:
        """GET `url` from inside the prober namespace; raises OSError when it fails."""
        code = (
            "import sys, urllib.request\n"
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
        )
        run = subprocess.run(
            self.in_prober(sys.executable, "-c", code, url), capture_output=True, text=True, timeout=timeout
        )
        if run.returncode != 0:
            raise OSError(f"GET {url} in {self.namespaces()[0]}: {run.stderr.strip().splitlines()[-1:]}")
        return run.stdout

    def close(self) -> None:
        """Stop the processes and remove every namespace."""
        for process in self.processes:
            process.kill()
            process.wait()
        for namespace in self.namespaces():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@dataclass
class BlockWorld(Namespaces):
    """Create with `BlockWorld.build(blocks, sites)`; `close()` removes every namespace."""

    prober: str
    router: str
    sides: dict[str, str]  # world/tcponly -> namespace name
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cut: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, blocks: Sequence[LabBlock], sites: Sequence[tuple[str, str]] = ()) -> BlockWorld:
        """`sites`: (address, side) pairs that serve HTTP on port 80."""
        suffix = uuid.uuid4().hex[:6]
        world = cls(
            f"blk-p-{suffix}", f"blk-r-{suffix}", {side: f"blk-{side[0]}-{suffix}" for side in _LINKS}
        )
        try:
            world._create()
            world._wire()
            world._add(blocks)
            for side, namespace in world.sides.items():
                addresses = [address for address, site_side in sites if site_side == side]
                if addresses:
                    world._serve_web(namespace, addresses)
        except BaseException:
            world.close()
            raise
        return world

    def _wire(self) -> None:
        self._link(self.prober, "10.210.0.1", "10.210.0.2")
        _run("ip", "-n", self.prober, "route", "add", "default", "via", "10.210.0.2")
        _run("ip", "netns", "exec", self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for side, (net, space) in _LINKS.items():
            namespace = self.sides[side]
            self._link(namespace, f"{net}.2", f"{net}.1")
            _run("ip", "-n", namespace, "route", "add", "default", "via", f"{net}.1")
            _run("ip", "-n", self.router, "route", "add", space, "via", f"{net}.2")
            # what is not assigned here is silent, as unused space of a real network is
            _run("ip", "-n", namespace, "route", "add", "blackhole", space)
        _run("ip", "netns", "exec", self.sides["tcponly"], "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")

    def _link(self, inner: str, inner_address: str, router_address: str) -> None:
        """A veth pair from `inner` to the router, a /30 between them."""
        self._veth((inner, inner_address), (self.router, router_address))

    def _add(self, blocks: Sequence[LabBlock]) -> None:
        """The responsive part of each block on its side's loopback, in one `ip -batch` a side."""
        commands: dict[str, list[str]] = {side: [] for side in _LINKS}
        for block in blocks:
            space = ipaddress.IPv4Network(_LINKS[block.side][1])
            if not ipaddress.IPv4Network(block.prefix).subnet_of(space):
                raise ValueError(f"{block.prefix} is not in {space}, the space of {block.side}")
            if block.responsive:
                commands[block.side].append(f"addr add {block.responsive} dev lo")
        for side, lines in commands.items():
            if lines:
                subprocess.run(
                    ["ip", "-n", self.sides[side], "-batch", "-"],
                    input="\n".join(lines) + "\n",
                    text=True,
                    check=True,
                    capture_output=True,
                    timeout=120,
                )

    def darken(self, *prefixes: str) -> None:
        """Cut these prefixes (blocks, or a site's /32) at the router: their packets vanish."""
        for prefix in prefixes:
            _run("ip", "-n", self.router, "route", "add", "blackhole", str(ipaddress.IPv4Network(prefix)))
            self.cut.add(prefix)

    def restore(self, *prefixes: str) -> None:
        for prefix in prefixes or tuple(self.cut):
            _run("ip", "-n", self.router, "route", "del", "blackhole", str(ipaddress.IPv4Network(prefix)))
            self.cut.discard(prefix)

    def namespaces(self) -> list[str]:
        return [self.prober, self.router, *self.sides.values()]
