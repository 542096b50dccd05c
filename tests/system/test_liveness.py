"""Liveness of addresses on loopback for real: ICMP echo through icmplib, TCP connects, the
discovery pass and a round under its packet budget. Loopback answers every address of 127.0.0.0/8,
so a /24 there is a fully responsive block; a closed port's RST counts as alive."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from monitor.catalog.schema import LivenessOptions
from monitor.lab.harness import monitor_command
from monitor.outages.block_store import BlockStore
from monitor.probing.belief import BlockState
from monitor.probing.block_rounds import BlockResult, BlockRounds
from monitor.probing.discovery import discover
from monitor.probing.liveness import ICMP, Answer, Liveness, tcp_method
from monitor.probing.pacing import PacketBudget


def _liveness() -> Liveness:
    liveness = Liveness.detect("auto", (443,), 1.0)
    if liveness.icmp_privileged is None:
        pytest.skip(f"no ICMP socket for this process: {liveness.reason}")
    return liveness


def test_the_method_follows_what_the_process_may_open() -> None:
    liveness = Liveness.detect("auto", (443, 80), 1.0)
    if os.geteuid() == 0:
        assert liveness.name == "icmp_raw" and "raw socket" in liveness.reason
    assert liveness.methods[-2:] == (tcp_method(443), tcp_method(80))
    tcp_only = Liveness.detect("tcp", (443,), 1.0)
    assert tcp_only.methods == (tcp_method(443),) and "TCP only" in tcp_only.reason
    assert Liveness.detect("icmp", (443,), 1.0).tcp_ports == ()


async def test_echo_and_connect_on_loopback() -> None:
    liveness = _liveness()
    assert await liveness.probe("127.0.0.1", ICMP) is Answer.ALIVE
    assert await liveness.probe("127.0.0.1", tcp_method(9)) is Answer.ALIVE  # refused: a host is there


async def test_a_failure_on_our_side_is_local_never_silent() -> None:
    liveness = _liveness()
    # 255.255.255.255 cannot be sent to without SO_BROADCAST: the echo never leaves
    assert await liveness.probe("255.255.255.255", ICMP) is Answer.LOCAL


async def test_discovery_finds_the_whole_loopback_block_under_its_budget() -> None:
    liveness = _liveness()
    budget = PacketBudget(2000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    hitlist = await discover("127.0.9.0/24", liveness, budget)
    elapsed = loop.time() - started
    assert len(hitlist.addresses) == 256 and {method for _, method in hitlist.addresses} == {ICMP}
    assert hitlist.availability == 1.0
    assert budget.sent == 512
    assert elapsed >= 511 / 2000  # never faster than the budget


async def test_a_round_decides_each_block_with_few_probes_and_keeps_the_budget() -> None:
    liveness = _liveness()
    hitlists = {}
    budget = PacketBudget(5000)
    for prefix in ("127.0.10.0/24", "127.0.11.0/24"):
        hitlists[prefix] = await discover(prefix, liveness, budget)
    results: list[BlockResult] = []
    rounds = BlockRounds(
        liveness, LivenessOptions(round="2s", packets_per_second=50, timeout="1s"), results.append
    )
    rounds.set_hitlists(hitlists)
    await rounds.run_round()
    assert sorted(result.prefix for result in results) == sorted(hitlists)
    assert all(
        result.state is BlockState.UP and result.probes == 1 and not result.local for result in results
    )
    assert rounds.budget.sent == 2


def test_blocks_discover_stores_each_blocks_hitlist_where_the_daemon_reads_it(tmp_path: Path) -> None:
    config = tmp_path / "targets.yaml"
    config.write_text(
        "blocks:\n  - {prefix: 127.30.0.0/23, asn: 64500, country: KZ}\n"
        "liveness: {method: tcp, tcp_ports: [9], timeout: 500ms, discovery_packets_per_second: 5000}\n"
    )
    state = tmp_path / "journal.sqlite"

    def discover(prefix: str) -> subprocess.CompletedProcess[str]:
        command = ("blocks", "discover", "--config", str(config), "--state", str(state), "--prefix", prefix)
        return subprocess.run(monitor_command(*command), capture_output=True, text=True, timeout=60)

    run = discover("127.30.1.0/24")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "127.30.1.0/24  256 responsive  availability 1.00\n"  # a refused port: a host there
    assert "TCP only (liveness.method: tcp)" in run.stderr and "512 packets" in run.stderr
    (hitlist,) = BlockStore(state).hitlists().values()
    assert hitlist.prefix == "127.30.1.0/24" and hitlist.addresses[0] == ("127.30.1.0", tcp_method(9))
    wrong = discover("10.0.0.0/24")
    assert wrong.returncode == 2 and "10.0.0.0/24 is not a /24 of its blocks:" in wrong.stderr
