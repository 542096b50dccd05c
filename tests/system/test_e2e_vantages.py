"""Three vantages, one verdict: the multi-vantage deployment end to end with the real binaries.

Three monitors (`--vantage fra1|ams1|sgp1`) each probe their own simulated Kazakhstan: three
labs on the same loopback addresses with their own ports and DNS server, so the test can make the
country dark for one vantage only, or cut one vantage's uplink, as a broken path would. Next to
each monitor a Prometheus in agent mode (deploy/prometheus-agent.yml, with `vantage` as its
external label from $VANTAGE) scrapes it and remote-writes through a TCP path the test can cut to
the central Prometheus (deploy/prometheus-central.yml, the receiver), which runs the per-vantage
and the global rules and sends to Alertmanager (deploy/alertmanager.yml), which delivers to a
webhook run by this test. Everything is on 127.0.0.1.

As in test_e2e_prometheus.py only timings differ from what ships: the monitors probe every
second, the agents scrape and the central evaluates every second, the agents send each second's
batch at once, Alertmanager waits 1s, and the test's copies of both rule files have every `for:`
and `keep_firing_for:` divided by SPEEDUP.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from monitor.demo import hand_over_hitlists
from monitor.lab.harness import monitor_command
from monitor.lab.internet import SimulatedInternet
from monitor.lab.presets import KAZAKHSTAN_STAYS_UP, kazakhstan
from monitor.lab.web import Mode
from tests.system.daemon_harness import Daemon, free_port, start_daemon, until, write_fast_config
from tests.system.prometheus_stack import (
    ALERTMANAGER,
    PROMETHEUS,
    CuttablePath,
    Delivery,
    Server,
    Webhook,
    alertmanager_alerts,
    alertmanager_config,
    fast_rules,
    fast_seconds,
    query,
    skip_unless_installed,
    start_alertmanager,
    start_server,
    start_webhook,
)
from tests.system.test_deploy import (
    ALERTMANAGER_CONFIG,
    GLOBAL_RULES,
    PROMETHEUS_AGENT_CONFIG,
    PROMETHEUS_CENTRAL_CONFIG,
    ROOT,
    RULES,
    _substitute,
)
from tests.system.test_e2e_prometheus import EMPTY_WHEN_HEALTHY, SHORT_WINDOWS, _panel_exprs

skip_unless_installed()

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

NAMES = ("fra1", "ams1", "sgp1")
SPEEDUP = 15  # CountryShutdown 1m -> 4s, PartialVisibility 3m -> 12s, VantageOffline 1m -> 4s
ALERTMANAGER_TIMING = {"group_wait": "1s", "group_interval": "1s"}
RESEND_DELAY = "10m"  # see test_e2e_prometheus.py: no resends of old alerts within the module
FLUSH_SECONDS = 3.0
CUT_SECONDS = 30.0
# What the global rules and a vantage's own uplink say; TargetDown and CertificateExpiringSoon of
# the lab's geo-blocked and expiring sites fire from every vantage all along (to `vantages`).
WATCHED = ("CountryShutdown", "RegionalShutdown", "MobileShutdown", "NetworkOutage", "PartialVisibility",
           "VantageOffline", "VantageNotReporting")  # fmt: skip


@dataclass
class Vantage:
    name: str
    net: SimulatedInternet
    daemon: Daemon
    path: CuttablePath  # from its agent to the central Prometheus
    agent: Server


@dataclass
class Central:
    vantages: dict[str, Vantage]
    prometheus: Server
    alertmanager: Server
    webhook: Webhook
    session: aiohttp.ClientSession

    async def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        return await query(self.session, self.prometheus, expr, at)

    async def value(self, expr: str) -> float | None:
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else None

    async def held(self, **labels: str) -> list[dict[str, Any]]:
        return await alertmanager_alerts(self.session, self.alertmanager, **labels)

    def deliveries(self, mark: int, receiver: str | None = None, **labels: str) -> list[Delivery]:
        found = self.webhook.since(mark, **labels)
        return [d for d in found if receiver is None or d.receiver == receiver]

    def delivered(
        self, mark: int, receiver: str, status: str, **labels: str
    ) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(d.status == status for d in self.deliveries(mark, receiver, **labels))

        return check


def _compose_flags(service: str, prefix: str) -> list[str]:
    """The flags docker-compose.yml gives `service` that start with `prefix`."""
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]["command"]
    flags = [flag for flag in command if flag.startswith(prefix)]
    assert flags, f"docker-compose.yml: {service} has no {prefix} flag"
    return flags


def _agent_config(daemon: Daemon, path: CuttablePath) -> dict[str, Any]:
    config = yaml.safe_load(PROMETHEUS_AGENT_CONFIG.read_text())
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s"})
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{daemon.port}"]}]
    (write,) = config["remote_write"]
    write["url"] = path.url + "/api/v1/write"
    write["queue_config"] = {"batch_send_deadline": "1s", "max_backoff": "1s"}
    return config


def _central_config(rule_files: list[Path], port: int, alertmanager: str) -> dict[str, Any]:
    config = yaml.safe_load(PROMETHEUS_CENTRAL_CONFIG.read_text())
    config["global"].update({"evaluation_interval": "1s", "scrape_interval": "1s"})
    config["rule_files"] = [str(path) for path in rule_files]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [alertmanager]}]
    local = {"prometheus": f"127.0.0.1:{port}", "alertmanager": alertmanager}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [local[job["job_name"]]]}]
    return config


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def central(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Central]:
    assert PROMETHEUS is not None and ALERTMANAGER is not None
    workdir = tmp_path_factory.mktemp("vantages")
    webhook = Webhook()
    async with AsyncExitStack() as exits:
        session = await exits.enter_async_context(aiohttp.ClientSession())
        webhook_base = await start_webhook(exits, webhook)

        config = alertmanager_config(ALERTMANAGER_CONFIG, webhook_base, ALERTMANAGER_TIMING)
        alertmanager = await start_alertmanager(exits, session, workdir, config)

        rule_files = []
        for rules in (RULES, GLOBAL_RULES):
            rule_files.append(workdir / f"{rules.stem}.fast.yml")
            rule_files[-1].write_text(yaml.safe_dump(fast_rules(rules, SPEEDUP), sort_keys=False))
        central_port = free_port()
        central_config = workdir / "prometheus-central.yml"
        central_config.write_text(
            yaml.safe_dump(_central_config(rule_files, central_port, alertmanager.address))
        )
        prometheus = await start_server(exits, session, "central prometheus", [
            PROMETHEUS, *_compose_flags("prometheus-central", "--web.enable-remote-write-receiver"),
            f"--config.file={central_config}", f"--storage.tsdb.path={workdir / 'central'}",
            f"--web.listen-address=127.0.0.1:{central_port}", f"--rules.alert.resend-delay={RESEND_DELAY}",
        ], central_port, workdir / "central.log")  # fmt: skip

        vantages: dict[str, Vantage] = {}
        for name in NAMES:
            home = workdir / name
            net = await exits.enter_async_context(kazakhstan(workdir=home / "lab", with_blocks=True))
            hand_over_hitlists(net, home / "journal.sqlite")  # every panel has data, the block ones too
            # the last one merges the others' journals with its own (/api/outages/merged)
            peers = [f"--peer={v.daemon.base}" for v in vantages.values()] if name == NAMES[-1] else []
            daemon = await start_daemon(
                write_fast_config(net, home / "targets.yaml"),
                home / "journal.sqlite",
                "--vantage",
                name,
                *peers,
            )
            exits.push_async_callback(daemon.stop)
            path = CuttablePath(central_port)
            await path.mend()
            exits.push_async_callback(path.close)
            agent_port = free_port()
            agent_config = home / "prometheus-agent.yml"
            agent_config.write_text(yaml.safe_dump(_agent_config(daemon, path)))
            agent = await start_server(exits, session, f"agent {name}", [
                PROMETHEUS, *_compose_flags("prometheus-agent", "--enable-feature="),
                f"--config.file={agent_config}", f"--storage.agent.path={home / 'agent'}",
                f"--web.listen-address=127.0.0.1:{agent_port}",
            ], agent_port, home / "agent.log", env={**os.environ, "VANTAGE": name})  # fmt: skip
            vantages[name] = Vantage(name, net, daemon, path, agent)

        yield Central(vantages, prometheus, alertmanager, webhook, session)


async def _healthy(central: Central) -> bool:
    """Every vantage votes, none sees KZ dark, and no global or vantage alert is pending, firing
    or held by Alertmanager."""
    if await central.value('country:monitor_vantages_voting:count{country="KZ"}') != len(NAMES):
        return False
    if await central.query('country:monitor_vantages_dark:count{country="KZ"}'):
        return False
    if await central.query(f'ALERTS{{alertname=~"{"|".join(WATCHED)}"}}'):
        return False
    return not [a for a in await central.held() if a["labels"]["alertname"] in WATCHED]


@pytest_asyncio.fixture(loop_scope="module")
async def healthy(central: Central) -> Central:
    for vantage in central.vantages.values():
        await vantage.net.restore_all()
    await until(
        lambda: _healthy(central), timeout=90, what="three healthy vantages at the central Prometheus"
    )
    await asyncio.sleep(FLUSH_SECONDS)  # what was going to be delivered by now has arrived
    return central


async def _blackout(vantages: list[Vantage]) -> None:
    await asyncio.gather(
        *(
            vantage.net.set_country("KZ", Mode.BLACKHOLE, except_hosts=KAZAKHSTAN_STAYS_UP)
            for vantage in vantages
        )
    )


async def _restore(vantages: list[Vantage]) -> None:
    await asyncio.gather(*(vantage.net.restore_all() for vantage in vantages))


async def test_every_dashboard_query_shows_data_for_one_vantage_and_for_all(healthy: Central) -> None:
    async with healthy.session.get(
        healthy.prometheus.base + "/api/v1/label/vantage/values",
        params={"match[]": "monitor_vantage_online"},
    ) as response:
        assert (await response.json())["data"] == sorted(NAMES)
    for vantage in ("sgp1", ".*"):
        empty = set()
        for where, expr in _panel_exprs():
            if not await healthy.query(_substitute(expr.replace("$vantage", vantage), SHORT_WINDOWS)):
                empty.add(where)
        assert empty <= EMPTY_WHEN_HEALTHY, f"vantage {vantage}: panels without data: {sorted(empty)}"
    one = await healthy.query('monitor_vantage_online{vantage=~"sgp1"}')
    assert [sample["metric"]["vantage"] for sample in one] == ["sgp1"]


async def test_a_country_dark_from_every_vantage_is_one_global_shutdown_delivered_once(
    healthy: Central,
) -> None:
    central, vantages = healthy, list(healthy.vantages.values())
    mark = len(central.webhook.deliveries)
    await _blackout(vantages)
    try:
        seconds = await until(
            central.delivered(mark, "outages", "firing", alertname="CountryShutdown", vantage=""),
            timeout=90,
            what="the global CountryShutdown at the outages receiver",
        )
        print(f"global CountryShutdown delivered {seconds:.1f}s after the blackout (rules / {SPEEDUP})")

        async def each_vantage_inhibited() -> bool:
            held = await central.held(alertname="CountryShutdown", country="KZ")
            return {a["labels"].get("vantage") for a in held if a["status"]["inhibitedBy"]} == set(NAMES)

        await until(
            each_vantage_inhibited,
            timeout=30,
            what="each vantage's CountryShutdown inhibited by the global one",
        )
        assert await central.value('country:monitor_vantages_dark:count{country="KZ"}') == len(NAMES)
    finally:
        await _restore(vantages)
    await until(
        central.delivered(mark, "outages", "resolved", alertname="CountryShutdown", vantage=""),
        timeout=90,
        what="the global CountryShutdown resolved",
    )
    # the vantages see the end a moment apart: that is no path problem either
    await asyncio.sleep(fast_seconds(GLOBAL_RULES, SPEEDUP, "PartialVisibility", "for") + FLUSH_SECONDS)
    published = [
        (d.status, d.labels["alertname"], d.labels.get("vantage"))
        for d in central.deliveries(mark, "outages")
    ]
    assert published == [("firing", "CountryShutdown", None), ("resolved", "CountryShutdown", None)]
    assert central.deliveries(mark, alertname="PartialVisibility") == []


async def test_one_vantage_losing_its_uplink_alerts_its_operator_and_publishes_nothing(
    healthy: Central,
) -> None:
    central, sgp1 = healthy, healthy.vantages["sgp1"]
    mark = len(central.webhook.deliveries)
    await sgp1.net.set_vantage_offline(True)
    try:
        seconds = await until(
            central.delivered(mark, "operator", "firing", alertname="VantageOffline", vantage="sgp1"),
            timeout=60,
            what="VantageOffline of sgp1 at the operator receiver",
        )
        print(f"VantageOffline of one vantage delivered {seconds:.1f}s after its uplink went")
        voting = 'country:monitor_vantages_voting:count{country="KZ"}'

        async def two_vote() -> bool:
            return await central.value(voting) == 2

        await until(two_vote, timeout=30, what="sgp1 no longer voting")
        # longer than any global alert's `for:`: nothing comes of it
        await asyncio.sleep(fast_seconds(GLOBAL_RULES, SPEEDUP, "PartialVisibility", "for") + FLUSH_SECONDS)
        assert await central.value(voting) == 2
    finally:
        await sgp1.net.set_vantage_offline(False)
    await until(
        central.delivered(mark, "operator", "resolved", alertname="VantageOffline", vantage="sgp1"),
        timeout=60,
        what="VantageOffline of sgp1 resolved",
    )
    await asyncio.sleep(FLUSH_SECONDS)
    assert central.deliveries(mark, "outages") == []
    operator = {
        (d.labels["alertname"], d.labels.get("vantage")) for d in central.deliveries(mark, "operator")
    }
    assert operator == {("VantageOffline", "sgp1")}


async def test_a_country_dark_from_one_vantage_only_is_partial_visibility_not_a_shutdown(
    healthy: Central,
) -> None:
    central, sgp1 = healthy, healthy.vantages["sgp1"]
    mark = len(central.webhook.deliveries)
    await _blackout([sgp1])
    try:
        seconds = await until(
            central.delivered(mark, "operator", "firing", alertname="PartialVisibility", country="KZ"),
            timeout=90,
            what="PartialVisibility for KZ at the operator receiver",
        )
        print(f"PartialVisibility delivered {seconds:.1f}s after the country went dark for one vantage")

        async def its_shutdown_inhibited() -> bool:
            held = await central.held(alertname="CountryShutdown", country="KZ", vantage="sgp1")
            return bool(held) and all(a["status"]["inhibitedBy"] for a in held)

        await until(its_shutdown_inhibited, timeout=30, what="sgp1's own CountryShutdown inhibited")
        assert await central.query('ALERTS{alertname="CountryShutdown", vantage=""}') == []
    finally:
        await _restore([sgp1])
    await until(
        central.delivered(mark, "operator", "resolved", alertname="PartialVisibility", country="KZ"),
        timeout=60,
        what="PartialVisibility resolved",
    )
    await asyncio.sleep(FLUSH_SECONDS)
    assert central.deliveries(mark, "outages") == []
    # sgp1's own view went to the vantages receiver before the consensus formed, marked as its own
    assert {d.labels.get("vantage") for d in central.deliveries(mark, alertname="CountryShutdown")} <= {
        "sgp1"
    }
    assert {d.receiver for d in central.deliveries(mark, alertname="CountryShutdown")} <= {"vantages"}


async def test_an_agent_cut_off_from_the_central_prometheus_delivers_its_backlog_and_nothing_fires(
    healthy: Central,
) -> None:
    central, sgp1 = healthy, healthy.vantages["sgp1"]
    mark = len(central.webhook.deliveries)
    newest = 'timestamp(up{job="shutdown-monitor", vantage="sgp1"})'
    cut_at = time.time()
    await sgp1.path.cut()
    try:
        await asyncio.sleep(CUT_SECONDS)
        (sample,) = await central.query(newest)
        assert float(sample["value"][1]) < cut_at + 3, "samples still arrive through the cut path"
        assert await central.value('country:monitor_vantages_voting:count{country="KZ"}') == len(NAMES)
    finally:
        mended_at = time.time()
        await sgp1.path.mend()

    window = f'count_over_time(up{{job="shutdown-monitor", vantage="sgp1"}}[{int(CUT_SECONDS)}s])'

    async def backlog_arrived() -> bool:
        result = await central.query(window, at=mended_at)
        return bool(result) and float(result[0]["value"][1]) >= 0.9 * CUT_SECONDS

    seconds = await until(backlog_arrived, timeout=60, what="the samples sgp1's agent kept while cut off")
    print(f"{CUT_SECONDS:.0f}s of samples kept by the agent arrived {seconds:.1f}s after the path came back")
    await asyncio.sleep(FLUSH_SECONDS)
    assert central.deliveries(mark) == []
    assert await _healthy(central)


async def test_the_three_journals_merge_into_one_view_of_who_saw_what(central: Central) -> None:
    """After the scenarios above: `monitor outages --from` each monitor, and the same from the API
    of the one started with the others as --peer."""
    sources = [arg for vantage in central.vantages.values() for arg in ("--from", vantage.daemon.base)]
    process = await asyncio.create_subprocess_exec(
        *monitor_command("outages", "--since", "1h", "--json", *sources),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    merged = json.loads(out)
    assert [(v["vantage"], v["error"]) for v in merged["vantages"]] == [(name, None) for name in NAMES]
    country = [o for o in merged["outages"] if (o["scope"], o["key"]) == ("country", "KZ")]
    # newest first: the blackout for sgp1 alone, then the one seen from every vantage
    assert [(o["consensus"], o["seen_by"], o["not_seen_by"]) for o in country] == [
        ("partial_visibility", ["sgp1"], ["fra1", "ams1"]),
        ("confirmed", sorted(NAMES), []),
    ]
    for outage in country:
        for sighting in outage["sightings"]:
            assert sighting["evidence"] and sighting["ended_at"] is not None, sighting
    own = [(o["consensus"], o["seen_by"]) for o in merged["outages"] if o["scope"] == "vantage"]
    assert own == [("own", ["sgp1"])]

    status, body = await central.vantages["sgp1"].daemon.get("/api/outages/merged?since=1h")
    assert status == 200
    from_api = json.loads(body)

    def summary(view: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
        return [(o["scope"], o["key"], o["consensus"], o["seen_by"]) for o in view["outages"]]

    assert summary(from_api) == summary(merged)
