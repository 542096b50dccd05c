"""Where the packets stop, for real, in network namespaces this test creates (root only; CI runs
as root): the monitor runs inside the prober namespace, a chain of routers (our transit, the
country's border and core, an end-user network's access router) leads to the network's
websites, and each cut at a different router must name the right last hop and ASN in the
network outage's path evidence. Hop addresses map to ASNs through an IPASN file (pyasn), as
offline as the rest. Nothing leaves the namespaces.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.catalog.schema import PathOptions
from monitor.lab.harness import MonitorProcess, free_port, monitor_command, run_monitor
from monitor.lab.router_chain import RouterChain
from monitor.probing.path_watch import PathWatch
from monitor.probing.traceroute import TraceOptions, trace
from tests.system.netns_monitor import NamespacedMonitor as Lab
from tests.system.netns_monitor import skip_without_namespaces

pytestmark = pytest.mark.netns

TRANSIT, KAZAKHTELECOM, HOME = 64600, 9198, 64501  # our transit; the country's upstream; the network
ASNS = {"transit": TRANSIT, "border": KAZAKHTELECOM, "core": KAZAKHTELECOM, "access": HOME}
SITES = ("10.96.1.1", "10.96.1.2", "10.96.1.3")
NETWORK = f"KZ/AS{HOME}"
ROOT = Path(__file__).resolve().parents[2]


def _config(path: Path, ipasn: Path) -> Path:
    targets = "".join(
        f'  - {{name: site-{n}, url: "http://{address}/", asn: {HOME}, country: KZ, category: web}}\n'
        for n, address in enumerate(SITES, 1)
    )
    path.write_text(
        "defaults: {interval: 1s, timeout: 1s, down_after: 2, up_after: 1, resolvers: ['127.0.0.1:1']}\n"
        "analysis: {evaluate_every: 500ms}\n"
        "networks:\n"
        f"  {KAZAKHTELECOM}: {{name: Kazakhtelecom, kind: transit, country: KZ}}\n"
        f"  {HOME}: {{name: Home, kind: fixed, country: KZ}}\n"
        f"paths: {{interval: 5s, hop_timeout: 500ms, packets_per_second: 50, ipasn_file: {ipasn}}}\n"
        f"targets:\n{targets}"
    )
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    skip_without_namespaces()
    pytest.importorskip("pyasn", reason="pyasn (the test extra) maps hop addresses offline")
    chain = RouterChain.build(SITES)
    workdir = tmp_path_factory.mktemp("paths")
    ipasn = workdir / "ipasn.dat"
    ipasn.write_text(RouterChain.ipasn(ASNS, HOME))
    lab = None
    try:
        lab = Lab(chain, _start(chain, workdir / "targets.yaml", ipasn))
        lab.until(lambda: _usual_traces(lab) >= 2, timeout=30)  # the usual path, twice
        yield lab
    finally:
        if lab is not None:
            lab.monitor.stop()
        chain.close()


def _start(chain: RouterChain, config: Path, ipasn: Path) -> MonitorProcess:
    monitor = run_monitor(
        _config(config, ipasn),
        state=config.parent / "journal.sqlite",
        port=free_port(),
        prefix=chain.in_prober(),
    )
    Lab(chain, monitor).until(Lab(chain, monitor).serving, timeout=30)
    return monitor


def _usual_traces(lab: Lab) -> float:
    return dict(lab.metric("monitor_path_traces_total")).get('monitor_path_traces_total{purpose="usual"}', 0)


def test_a_run_without_cuts_opens_nothing_and_attaches_nothing(lab: Lab) -> None:
    assert "paths: UDP traceroute" in lab.monitor.log.read_text()
    started = time.monotonic()
    while time.monotonic() - started < 6:  # more than one usual trace
        assert lab.open_outages() == []
        time.sleep(1)
    assert lab.get("/api/outages?since=1h")["outages"] == []
    assert dict(lab.metric("monitor_path_traces_total"))['monitor_path_traces_total{purpose="outage"}'] == 0


@pytest.mark.parametrize(
    ("router", "where", "last", "silent_next"),
    [
        ("border", "transit", "transit", "border"),
        ("core", "border", "border", "core"),
        ("access", "inside", "core", "access"),
    ],
)
def test_a_cut_names_the_last_hop_and_its_asn(
    lab: Lab, router: str, where: str, last: str, silent_next: str
) -> None:
    chain: RouterChain = lab.world  # type: ignore[assignment]
    chain.cut(router)  # silently, as a blackhole route does
    try:
        outage = lab.until(lambda: _traced_outage(lab), timeout=30)
        status_page = lab.get("/")
    finally:
        chain.restore()
    assert outage["scope"] == "network" and outage["key"] == NETWORK
    path = outage["path"]
    assert path["where"] == where
    assert path["stops_at"] == {
        "ttl": 1 + list(ASNS).index(last),
        "address": RouterChain.hop_address(last),
        "asn": ASNS[last],
        "reply": "time_exceeded",
    }
    assert len(path["traces"]) == len(SITES) and {t["where"] for t in path["traces"]} == {where}
    usual = path["traces"][0]["usual_hops"]
    assert [hop["address"] for hop in usual] == [*map(RouterChain.hop_address, ASNS), SITES[0]]
    if silent_next is not None:
        assert path["traces"][0]["first_silent_on_usual_path"]["address"] == RouterChain.hop_address(
            silent_next
        )
    assert f"AS{ASNS[last]}" in path["said"]
    assert path["said"] in status_page
    print(f"cut at {router}: {path['said']}")
    lab.until(lambda: lab.open_outages() == [], timeout=20)


def _traced_outage(lab: Lab) -> dict[str, Any] | None:
    return next((outage for outage in lab.open_outages() if outage.get("path")), None)


def test_the_journal_and_the_report_hold_each_outage_with_where_it_stopped(lab: Lab) -> None:
    outages = sorted(lab.get("/api/outages?since=1h")["outages"], key=lambda outage: outage["started_at"])
    assert [(o["scope"], o["key"], o["path"]["where"]) for o in outages] == [
        ("network", NETWORK, "transit"),
        ("network", NETWORK, "border"),
        ("network", NETWORK, "inside"),
    ]
    report = lab.text(f"/api/outages/{outages[1]['id']}/report?format=markdown")
    assert "## Where the packets stop" in report
    assert f"{RouterChain.hop_address('border')} AS{KAZAKHTELECOM}" in report
    table = subprocess.run(
        monitor_command(
            "outages", "--state", str(lab.monitor.config.parent / "journal.sqlite"), "--since", "1h"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for router in ("transit", "border", "core"):
        where = {"transit": "transit", "border": "border", "core": "inside"}[router]
        assert f"{where}: {RouterChain.hop_address(router)} AS{ASNS[router]}" in table
    packets = dict(lab.metric("monitor_path_packets_total"))["monitor_path_packets_total"]
    print(f"{packets:.0f} trace packets in the run")
    lab.monitor.assert_clean_log()


TRACE = """
import asyncio, json, sys, uvloop
from monitor.probing.path_watch import PathWatch
from monitor.probing.traceroute import TraceOptions, trace
run = uvloop.run if sys.argv[2] == "uvloop" else asyncio.run
found = run(trace(sys.argv[1], TraceOptions(hop_timeout=0.5)))
print(json.dumps([[hop.address, hop.reply] for hop in found.hops]))
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_tracer_reads_each_kind_of_answer_without_privilege_on_either_loop(loop: str) -> None:
    """Alone on its own chain: a router that prohibits answers at once, unlike one rate-limiting
    the answers it also sends to the monitor's probes."""
    skip_without_namespaces()
    chain = RouterChain.build(SITES[:1])
    try:

        def traced() -> list[list[str | None]]:
            # without a single capability (no CAP_NET_RAW): the tracer needs only a UDP socket
            argv = chain.in_prober("setpriv", "--bounding-set=-all", "--inh-caps=-all", "--")
            run = subprocess.run(
                [*argv, sys.executable, "-c", TRACE, SITES[0], loop],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
            )
            assert run.returncode == 0, run.stderr
            return json.loads(run.stdout)

        routers = [[RouterChain.hop_address(router), "time_exceeded"] for router in ASNS]
        assert traced() == [*routers, [SITES[0], "reached"]]
        chain.cut("core", "prohibit")
        assert traced() == [*routers[:2], [RouterChain.hop_address("core"), "prohibited"]]
        chain.restore()
        chain.cut("border")
        assert traced() == [*routers[:1], [None, "silent"]]
    finally:
        chain.close()


def test_after_a_restart_the_usual_path_is_remembered(lab: Lab) -> None:
    """Restarted during a cut (before its first usual trace could run), the monitor still names
    the hop of the usual path that went silent: the usual paths are kept in its database."""
    config = lab.monitor.config
    lab.monitor.stop()
    chain: RouterChain = lab.world  # type: ignore[assignment]
    chain.cut("core")
    try:
        lab.monitor = _start(chain, config, config.parent / "ipasn.dat")
        outage = lab.until(lambda: _traced_outage(lab), timeout=30)
    finally:
        chain.restore()
    entry = outage["path"]["traces"][0]
    assert [hop["address"] for hop in entry["usual_hops"]] == [*map(RouterChain.hop_address, ASNS), SITES[0]]
    assert entry["first_silent_on_usual_path"]["address"] == RouterChain.hop_address("core")
    lab.until(lambda: lab.open_outages() == [], timeout=20)
    lab.monitor.assert_clean_log()


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_a_trace_on_loopback_reaches_in_one_hop_over_either_family(address: str) -> None:
    found = await trace(address, TraceOptions(hop_timeout=0.5))
    assert [(hop.ttl, hop.address, hop.reply) for hop in found.hops] == [(1, address, "reached")]
    assert found.packets == 1 and found.hops[0].rtt_seconds is not None and found.hops[0].rtt_seconds >= 0


async def test_every_probe_of_every_trace_comes_out_of_one_budget() -> None:
    async def no_asns(addresses: Sequence[str]) -> dict[str, int | None]:
        return {}

    watch = PathWatch(AsyncIOScheduler(), dict, no_asns, lambda network, trace: None)
    watch.apply(PathOptions(packets_per_second=10))
    started = time.monotonic()
    traces = await watch.trace_now(["127.0.0.1"] * 4 + ["::1"], "outage")  # one packet each, at once
    took = time.monotonic() - started
    assert [found.packets for found in traces if found] == [1] * 5 and watch.budget.sent == 5
    assert took >= 4 / 10  # the fifth packet waited four slots: never a burst
    await watch.stop()
