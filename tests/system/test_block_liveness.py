"""Block liveness for real, in network namespaces this test creates (root only; CI runs as root):
the monitor runs inside the prober namespace and watches a simulated Kazakhstan's end-user /24s
behind a router (monitor.lab.netns), some answering ICMP, some only TCP, one sparse and one
silent; blackhole routes at the router cut networks. Nothing leaves the namespaces.

Five networks: three fixed (one of them TCP-only), two mobile; two websites on each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.lab.harness import free_port, run_monitor
from monitor.lab.netns import BlockWorld, LabBlock
from tests.system.netns_monitor import NamespacedMonitor as Lab
from tests.system.netns_monitor import skip_without_namespaces

pytestmark = pytest.mark.netns

ROUND = 4.0
FIXED, TCP_ONLY, MOBILE = (64501, 64502), 64503, (64511, 64512)


def _blocks() -> dict[int, list[LabBlock]]:
    """Three /24s for each network: dense, dense, and one answering on a /28 only."""
    blocks: dict[int, list[LabBlock]] = {}
    for index, asn in enumerate((*FIXED, *MOBILE)):
        prefixes = [f"10.64.{10 * index + number}.0" for number in range(1, 4)]
        blocks[asn] = [LabBlock(f"{p}/24", f"{p}/24") for p in prefixes[:2]] + [
            LabBlock(f"{prefixes[2]}/24", f"{prefixes[2]}/28")
        ]
    blocks[TCP_ONLY] = [LabBlock(f"10.80.{n}.0/24", f"10.80.{n}.0/24", "tcponly") for n in range(1, 4)]
    blocks[FIXED[1]].append(LabBlock("10.64.99.0/24", ""))  # nobody there: never watched
    return blocks


BLOCKS = _blocks()


def _sites(asn: int) -> list[str]:
    side = "80" if asn == TCP_ONLY else "64"
    return [f"10.{side}.{200 + asn % 100}.{host}" for host in (1, 2)]


def _config(path: Path) -> Path:
    kinds = {**dict.fromkeys((*FIXED, TCP_ONLY), "fixed"), **dict.fromkeys(MOBILE, "mobile")}
    networks = "".join(
        f"  {asn}: {{name: AS{asn}, kind: {kind}, country: KZ}}\n" for asn, kind in kinds.items()
    )
    blocks = "".join(
        f"  - {{prefix: {block.prefix}, asn: {asn}, country: KZ}}\n"
        for asn, entries in BLOCKS.items()
        for block in entries
    )
    targets = "".join(
        f'  - {{name: site-{asn}-{n}, url: "http://{address}/", asn: {asn}, country: KZ, category: web}}\n'
        for asn in kinds
        for n, address in enumerate(_sites(asn))
    )
    path.write_text(
        "defaults: {interval: 1s, timeout: 1s, down_after: 2, up_after: 1, resolvers: ['127.0.0.1:1']}\n"
        "analysis: {evaluate_every: 500ms}\n"
        f"networks:\n{networks}blocks:\n{blocks}"
        f"liveness: {{round: {ROUND:g}s, timeout: 1s, packets_per_second: 500, "
        "discovery_packets_per_second: 5000, baseline_rounds: 2}\n"
        f"targets:\n{targets}"
    )
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    skip_without_namespaces("network namespaces and raw ICMP sockets")
    sites = [
        (address, "tcponly" if asn == TCP_ONLY else "world")
        for asn in (*FIXED, TCP_ONLY, *MOBILE)
        for address in _sites(asn)
    ]
    world = BlockWorld.build([block for entries in BLOCKS.values() for block in entries], sites)
    workdir = tmp_path_factory.mktemp("blocks")
    monitor = None
    try:
        monitor = run_monitor(
            _config(workdir / "targets.yaml"),
            state=workdir / "journal.sqlite",
            port=free_port(),
            prefix=world.in_prober(),
        )
        lab = Lab(world, monitor)
        lab.until(lab.serving, timeout=30)
        # discovered, and a baseline of every network's three answering /24s
        baselines = lambda: [value for _, value in lab.metric("monitor_blocks_baseline")]  # noqa: E731
        lab.until(lambda: baselines() == [3.0] * 5, timeout=90)
        yield lab
    finally:
        if monitor is not None:
            monitor.stop()
        world.close()


def test_discovery_finds_icmp_tcp_and_sparse_blocks_and_leaves_the_silent_one_unwatched(
    lab: Lab,
) -> None:
    assert "block liveness: ICMP through a raw socket" in lab.monitor.log.read_text()
    assert lab.metric("monitor_block_liveness_method_info") == [
        ('monitor_block_liveness_method_info{method="icmp_raw"}', 1.0)
    ]
    states = {name: value for name, value in lab.metric("monitor_blocks") if value}
    assert states[f'monitor_blocks{{asn="AS{TCP_ONLY}",country="KZ",region="",state="up"}}'] == 3
    assert states[f'monitor_blocks{{asn="AS{FIXED[1]}",country="KZ",region="",state="unwatched"}}'] == 1
    probes = dict(lab.metric("monitor_block_probes_total"))
    assert probes['monitor_block_probes_total{answer="alive",method="tcp"}'] > 0  # the TCP-only network


def test_a_quiet_run_opens_no_outage(lab: Lab) -> None:
    started = time.monotonic()
    while time.monotonic() - started < 3 * ROUND:
        assert lab.open_outages() == []
        time.sleep(1)
    rounds = dict(lab.metric("monitor_block_rounds_total"))
    assert rounds.get('monitor_block_rounds_total{result="complete"}', 0) >= 3


def test_a_network_cut_is_a_network_outage_confirmed_by_its_blocks_within_two_rounds(
    lab: Lab,
) -> None:
    asn = FIXED[0]
    cut = [block.prefix for block in BLOCKS[asn]] + [f"{address}/32" for address in _sites(asn)]
    lab.world.darken(*cut)
    started = time.monotonic()
    try:

        def confirmed() -> dict[str, Any] | None:
            return next(
                (
                    outage
                    for outage in lab.open_outages()
                    if outage["key"] == f"KZ/AS{asn}"
                    and outage["details"].get("signals") == ["blocks", "targets"]
                ),
                None,
            )

        outage = lab.until(confirmed, timeout=2 * ROUND + 4)
        took = time.monotonic() - started
        assert outage["scope"] == "network" and outage["details"]["blocks"]["down"] >= 2  # of 3
        assert {o["key"] for o in lab.open_outages()} == {f"KZ/AS{asn}"}
        print(f"network outage confirmed by blocks {took:.1f}s after the cut (round {ROUND:g}s)")
    finally:
        lab.world.restore()
    lab.until(lambda: lab.open_outages() == [], timeout=3 * ROUND)


def test_the_mobile_networks_cut_from_their_users_are_mobile_only_while_their_websites_stay_up(
    lab: Lab,
) -> None:
    lab.world.darken(*(block.prefix for asn in MOBILE for block in BLOCKS[asn]))
    try:
        outage = lab.until(
            # a round for every mobile block to be seen dark, one for the rest of the country to be
            # seen up (nothing wider), the dark ones' probes waiting out their timeouts
            lambda: next((o for o in lab.open_outages() if o["scope"] == "mobile"), None),
            timeout=5 * ROUND,
        )
        assert outage["verdict"] == "mobile_only" and outage["details"]["signals"] == ["blocks"]
        assert sorted(outage["targets"]) == [f"blocks:KZ/AS{asn}" for asn in MOBILE]
        assert [o["scope"] for o in lab.open_outages()] == ["mobile"]
        up = dict(lab.metric("monitor_target_up"))
        mobile_sites = [name for name in up if any(f"site-{asn}-" in name for asn in MOBILE)]
        assert len(mobile_sites) == 4 and all(up[name] == 1 for name in mobile_sites)
        verdicts = dict(lab.metric("monitor_country_verdict"))
        assert verdicts['monitor_country_verdict{country="KZ",verdict="mobile_only"}'] == 1
    finally:
        lab.world.restore()
    lab.until(lambda: lab.open_outages() == [], timeout=3 * ROUND)


def test_the_journal_holds_exactly_the_two_outages_and_nothing_else(lab: Lab) -> None:
    outages = lab.get("/api/outages?since=1h")["outages"]
    assert sorted((o["scope"], o["key"], o["absorbed_by"]) for o in outages) == [
        ("mobile", "KZ/mobile", None),
        ("network", f"KZ/AS{FIXED[0]}", None),
    ]
    assert all(o["ended_at"] is not None for o in outages)
    lab.monitor.assert_clean_log()
