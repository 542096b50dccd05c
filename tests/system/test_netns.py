"""Routing faults for real, in network namespaces this test creates (root only; CI runs as root).

Two namespaces joined by a veth pair: a server side with a small HTTP server, and a client side
where `monitor check` runs. Routes and link state make the faults (this kernel has no netem).
Nothing here touches the host's own network: the addresses exist only inside these namespaces.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.lab.harness import monitor_command
from tests.system.netns_monitor import skip_without_namespaces

pytestmark = pytest.mark.netns

SERVER_IP = "10.203.0.1"
CLIENT_IP = "10.203.0.2"
UNROUTED_IP = "10.204.0.1"  # inside the client namespace there is no route to it


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@dataclass
class Namespaces:
    client: str
    server: str
    server_process: subprocess.Popen[bytes]

    def run_check(self, tmp_path: Path, *targets: str, timeout: str = "2s") -> list[list[str]]:
        config = tmp_path / "targets.yaml"
        entries = "".join(
            f"  - {{name: t{index}, {spec}, country: KZ, category: test}}\n"
            for index, spec in enumerate(targets)
        )
        config.write_text(
            f"defaults: {{timeout: {timeout}, resolvers: ['127.0.0.1:1']}}\ntargets:\n{entries}"
        )
        run = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.client,
                *monitor_command("check", "--config", str(config)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
        return [line.split() for line in run.stdout.splitlines()[1:]]

    def netem(self, *args: str) -> None:
        _ip("netns", "exec", self.client, "tc", "qdisc", "replace", "dev", "veth-c", "root", "netem", *args)

    def clear_netem(self) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.client, "tc", "qdisc", "del", "dev", "veth-c", "root"],
            capture_output=True,
            timeout=20,
        )


@pytest.fixture(scope="module")
def namespaces() -> Iterator[Namespaces]:
    skip_without_namespaces()
    suffix = uuid.uuid4().hex[:6]
    client, server = f"mon-c-{suffix}", f"mon-s-{suffix}"
    _ip("netns", "add", client)
    _ip("netns", "add", server)
    process = None
    try:
        _ip(
            "link",
            "add",
            "veth-c",
            "netns",
            client,
            "type",
            "veth",
            "peer",
            "name",
            "veth-s",
            "netns",
            server,
        )
        for namespace, device, address in ((client, "veth-c", CLIENT_IP), (server, "veth-s", SERVER_IP)):
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", device)
            _ip("-n", namespace, "link", "set", device, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", client, "route", "add", "unreachable", "10.205.0.0/24")
        server_code = textwrap.dedent(f"""
            from http.server import BaseHTTPRequestHandler, HTTPServer
            class Ok(BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers()
                    self.wfile.write(b"ok\\n")
                def log_message(self, *args): pass
            HTTPServer(("{SERVER_IP}", 8080), Ok).serve_forever()
        """)
        process = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-c", server_code])
        yield Namespaces(client, server, process)
    finally:
        if process is not None:
            process.kill()
            process.wait()
        subprocess.run(["ip", "netns", "del", client], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", server], capture_output=True, timeout=20)


def test_the_server_is_reachable_across_the_namespaces(namespaces: Namespaces, tmp_path: Path) -> None:
    rows = namespaces.run_check(tmp_path, f'url: "http://{SERVER_IP}:8080/"', f'tcp: "{SERVER_IP}:8080"')
    assert [row[1] for row in rows] == ["ok", "ok"], rows


def test_no_route_to_the_network_is_tcp_unreachable(namespaces: Namespaces, tmp_path: Path) -> None:
    rows = namespaces.run_check(tmp_path, f'tcp: "{UNROUTED_IP}:80"', 'tcp: "10.205.0.1:80"')
    assert [row[2] for row in rows] == ["tcp_unreachable", "tcp_unreachable"], rows


def test_a_peer_that_drops_every_packet_is_tcp_timeout(namespaces: Namespaces, tmp_path: Path) -> None:
    # The far end of the link goes down; a permanent neighbour entry keeps the client sending
    # (no ARP failure), so SYNs vanish as they do when a country's routes are cut.
    mac = subprocess.run(
        ["ip", "-n", namespaces.server, "-br", "link", "show", "veth-s"],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout.split()[2]
    _ip(
        "-n",
        namespaces.client,
        "neigh",
        "replace",
        SERVER_IP,
        "lladdr",
        mac,
        "dev",
        "veth-c",
        "nud",
        "permanent",
    )
    _ip("-n", namespaces.server, "link", "set", "veth-s", "down")
    try:
        rows = namespaces.run_check(tmp_path, f'url: "http://{SERVER_IP}:8080/"', timeout="1500ms")
    finally:
        _ip("-n", namespaces.server, "link", "set", "veth-s", "up")
    assert rows[0][1:3] == ["FAIL", "tcp_timeout"], rows
