"""End to end with the real binaries, everything on 127.0.0.1.

The daemon (`python -m monitor run`) probes the simulated Kazakhstan; a real Prometheus scrapes it
and evaluates the shipped alert rules; a real Alertmanager routes and inhibits with the shipped
deploy/alertmanager.yml and delivers to a webhook run by this test.

Only timings differ from what ships, so the module runs in about two minutes: the daemon probes
every second (write_fast_config), Prometheus scrapes and evaluates every second, Alertmanager waits
1s before it sends a group, and the test's COPY of the rules has every `for:` and `keep_firing_for:`
divided by SPEEDUP. That keeps their order: CountryShutdown (1m) and NetworkOutage (1m30s) still
fire before the TargetDown (4m) they inhibit and resolve after them, and the gated alerts keep
firing (2m and more) until VantageOffline (1m) inhibits them, as in production.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from monitor.catalog.durations import parse_duration
from monitor.demo import hand_over_hitlists
from monitor.lab.internet import SimulatedInternet
from monitor.lab.presets import KAZAKHSTAN_STAYS_UP, KCELL, kazakhstan
from monitor.lab.web import Mode
from tests.system.daemon_harness import Daemon, free_port, start_daemon, until, write_fast_config
from tests.system.prometheus_stack import (
    ALERTMANAGER,
    PROMETHEUS,
    QueryError,
    Server,
    Webhook,
    alertmanager_alerts,
    alertmanager_config,
    fast_rules,
    fast_seconds,
    label_key,
    query,
    skip_unless_installed,
    start_alertmanager,
    start_server,
    start_webhook,
)
from tests.system.test_deploy import (
    ALERTMANAGER_CONFIG,
    GRAFANA_VARIABLES,
    OUTAGE_SCOPES,
    RULES,
    _all_panels,
    _dashboards,
    _substitute,
    _variable_query,
)

skip_unless_installed()

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SPEEDUP = 15  # in the test's copy of the rules: 1m -> 4s, 1m30s -> 6s, 2m -> 8s, 4m -> 16s
ALERTMANAGER_TIMING = {"group_wait": "1s", "group_interval": "1s"}
# Seconds of data are all there is: rates over 10s, not Grafana's usual minute.
SHORT_WINDOWS = {"$__rate_interval": "10s", "$__interval": "10s", "$__range": "1m"}
# Panels that are empty on a healthy network; each must show data during the shutdown below.
EMPTY_WHEN_HEALTHY = {"country-overview.json: 'Open outages now'"}
# The votes of several vantages (deploy/rules/global.yml): empty with one monitor, by design.
SEVERAL_VANTAGES = {"country-overview.json: 'Vantages seeing it dark (several vantages)'"}
# The lab's egov serves a certificate that expires in 10 days (monitor.lab.presets): not an outage.
EXPIRING = "CertificateExpiringSoon"
# Prometheus sends each alert again every resend delay (1m by default), resolved ones too, for 15m.
# Alertmanager announces such a resolved alert once the alert that inhibited it is gone (its known
# behaviour, prometheus/alertmanager#891, #2754): a site that went dark with its country or network
# and was never announced is then sent as resolved in its group. In production that comes minutes
# after the end of the outage; here, with the rules' durations divided by SPEEDUP but not the resend
# delay, it would land in whichever test runs a minute later. Not within the module's run: the
# alerts changing state are sent at once whatever the delay.
RESEND_DELAY = "10m"
# Long enough for Alertmanager to flush every group (each group_interval) and for the webhook to
# receive it: whatever was going to be sent by now has arrived.
FLUSH_SECONDS = 3 * parse_duration(ALERTMANAGER_TIMING["group_interval"])


def _alertmanager_config(webhook: str) -> dict[str, Any]:
    """deploy/alertmanager.yml with its routes and inhibitions as shipped, sending to `webhook`."""
    return alertmanager_config(ALERTMANAGER_CONFIG, webhook, ALERTMANAGER_TIMING)


def _fast_rules() -> dict[str, Any]:
    """The test's copy of deploy/rules/monitor-alerts.yml: `for:` and `keep_firing_for:` / SPEEDUP."""
    return fast_rules(RULES, SPEEDUP)


def _fast_seconds(alert: str, key: str) -> float:
    return fast_seconds(RULES, SPEEDUP, alert, key)


def _prometheus_config(rules: Path, daemon: Daemon, alertmanager: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        # the job name the rules expect
        "scrape_configs": [
            {"job_name": "shutdown-monitor", "static_configs": [{"targets": [f"127.0.0.1:{daemon.port}"]}]}
        ],
    }


@dataclass
class Stack:
    net: SimulatedInternet
    daemon: Daemon
    prometheus: Server
    alertmanager: Server
    webhook: Webhook
    session: aiohttp.ClientSession

    async def query(self, expr: str) -> list[dict[str, Any]]:
        return await query(self.session, self.prometheus, expr)

    async def label_values(self, label: str, selector: str) -> list[str]:
        url = f"{self.prometheus.base}/api/v1/label/{label}/values"
        async with self.session.get(url, params={"match[]": selector}) as response:
            body = await response.json()
        if body.get("status") != "success":
            raise QueryError(f"label_values({selector}, {label}): {body.get('error')}")
        return list(body["data"])

    async def alertmanager_alerts(self, **labels: str) -> list[dict[str, Any]]:
        return await alertmanager_alerts(self.session, self.alertmanager, **labels)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    assert PROMETHEUS is not None and ALERTMANAGER is not None
    workdir = tmp_path_factory.mktemp("e2e")
    webhook = Webhook()
    async with AsyncExitStack() as exits:
        session = await exits.enter_async_context(aiohttp.ClientSession())
        net = await exits.enter_async_context(kazakhstan(workdir=workdir / "lab", with_blocks=True))

        webhook_base = await start_webhook(exits, webhook)

        hand_over_hitlists(net, workdir / "journal.sqlite")  # the block panels have data, as in the demo
        daemon = await start_daemon(
            write_fast_config(net, workdir / "targets.yaml"), workdir / "journal.sqlite"
        )
        exits.push_async_callback(daemon.stop)

        alertmanager = await start_alertmanager(exits, session, workdir, _alertmanager_config(webhook_base))

        prom_port = free_port()
        rules = workdir / "monitor-alerts.fast.yml"
        rules.write_text(yaml.safe_dump(_fast_rules(), sort_keys=False))
        prom_config = workdir / "prometheus.yml"
        prom_config.write_text(yaml.safe_dump(_prometheus_config(rules, daemon, alertmanager.address)))
        prometheus = await start_server(exits, session, "prometheus", [
            PROMETHEUS, f"--config.file={prom_config}", f"--storage.tsdb.path={workdir / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", f"--rules.alert.resend-delay={RESEND_DELAY}",
        ], prom_port, workdir / "prometheus.log")  # fmt: skip

        yield Stack(net, daemon, prometheus, alertmanager, webhook, session)


# ------------------------------------------------------------------------- a healthy network


async def _healthy_alerts(stack: Stack) -> set[tuple[tuple[str, str], ...]] | None:
    """The outage alerts of the healthy network once everything agrees on them, else None.

    Healthy: the country is normal and the vantage online in Prometheus; the only outage alerts,
    pending or firing, are TargetDown for the targets down anyway (geo-blocked from abroad); and
    Alertmanager holds exactly those, not inhibited, and has delivered them.
    """
    if not await stack.query('monitor_country_state{country="KZ", state="normal"} == 1'):
        return None
    if not await stack.query("monitor_vantage_online == 1"):
        return None
    down = {s["metric"]["target"] for s in await stack.query('monitor_target_up{category!="control"} == 0')}
    alerts = await stack.query(f'ALERTS{{scope=~"{"|".join(OUTAGE_SCOPES)}", alertname!="{EXPIRING}"}}')
    firing = {
        s["metric"]["target"]
        for s in alerts
        if s["metric"]["alertname"] == "TargetDown" and s["metric"]["alertstate"] == "firing"
    }
    if firing != down or len(alerts) != len(down):
        return None
    held = [
        a
        for a in await stack.alertmanager_alerts()
        if a["labels"].get("scope") in OUTAGE_SCOPES and a["labels"]["alertname"] != EXPIRING
    ]
    if {a["labels"].get("target") for a in held} != down or any(a["status"]["inhibitedBy"] for a in held):
        return None
    expected = {label_key(a["labels"]) for a in held}
    still_firing = {key for key, status in stack.webhook.latest_status().items() if status == "firing"}
    outage_keys = {key for key in still_firing if dict(key).get("scope") in OUTAGE_SCOPES}
    if {key for key in outage_keys if dict(key)["alertname"] != EXPIRING} != expected:
        return None
    return expected


@pytest_asyncio.fixture(loop_scope="module")
async def healthy(stack: Stack) -> set[tuple[tuple[str, str], ...]]:
    """Restore the lab and wait until every component agrees the network is healthy again."""
    await stack.net.restore_all()
    alerts = None
    checks = 0

    async def settled() -> bool:
        nonlocal alerts, checks
        checks += 1
        alerts = await _healthy_alerts(stack)
        return alerts is not None

    await until(settled, timeout=60, what="a healthy network in Prometheus, Alertmanager and the webhook")
    if checks > 1:  # it was still settling: let its last notifications arrive (each test ends flushed)
        await asyncio.sleep(FLUSH_SECONDS)
    assert alerts is not None
    return alerts


# ------------------------------------------------------------------------------ dashboards


def _panel_exprs() -> Iterator[tuple[str, str]]:
    for where, panel in _all_panels():
        for target in panel.get("targets", []):
            yield where, target["expr"]


async def test_every_dashboard_query_runs_and_shows_data_on_a_healthy_network(
    stack: Stack, healthy: set[tuple[tuple[str, str], ...]]
) -> None:
    assert SHORT_WINDOWS.keys() == GRAFANA_VARIABLES.keys()
    assert {where for where, _ in _panel_exprs()} >= EMPTY_WHEN_HEALTHY | SEVERAL_VANTAGES, "no such panel"
    empty = set()
    for where, expr in _panel_exprs():
        if not await stack.query(_substitute(expr, SHORT_WINDOWS)):
            empty.add(where)
    for name, board in _dashboards().items():
        for annotation in board["annotations"]["list"]:
            if "expr" in annotation:
                await stack.query(_substitute(annotation["expr"], SHORT_WINDOWS))  # it runs; empty is fine
        for variable in board["templating"]["list"]:
            found = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", _variable_query(variable))
            if found:
                values = await stack.label_values(found[2], _substitute(found[1]))
                if variable["name"] == "vantage":  # one monitor: no such label, Grafana shows All
                    assert values == [], f"{name}: {values}"
                else:
                    assert values, f"{name}: variable {variable['name']} has no values"
    print("panels without data on a healthy network:", sorted(empty) or "none")
    assert empty >= SEVERAL_VANTAGES, "a panel of several vantages shows data from one"
    unexpected = empty - EMPTY_WHEN_HEALTHY - SEVERAL_VANTAGES
    assert not unexpected, f"panels without data: {sorted(unexpected)}"


async def test_a_certificate_close_to_expiry_is_one_warning_with_its_days_left(
    stack: Stack, healthy: set[tuple[tuple[str, str], ...]]
) -> None:
    firing = await stack.query(f'ALERTS{{alertname="{EXPIRING}", alertstate="firing"}}')
    assert [sample["metric"]["target"] for sample in firing] == ["egov"]
    days = await stack.query('(probe_ssl_earliest_cert_expiry{target="egov"} - time()) / 86400')
    assert 9.9 < float(days[0]["value"][1]) <= 10.0
    others = await stack.query('(probe_ssl_earliest_cert_expiry{target!="egov"} - time()) / 86400 < 59')
    assert others == []  # the others were issued a month ago for 90 days


# ------------------------------------------------------------------------- country shutdown


async def test_a_country_shutdown_is_one_alert_and_its_end_one_resolution_nothing_about_its_sites(
    stack: Stack, healthy: set[tuple[tuple[str, str], ...]]
) -> None:
    mark = len(stack.webhook.deliveries)
    await stack.net.set_country("KZ", Mode.BLACKHOLE, except_hosts=KAZAKHSTAN_STAYS_UP)
    try:
        seconds = await until(
            lambda: _delivered(stack, mark, "firing", alertname="CountryShutdown", country="KZ"),
            timeout=60,
            what="CountryShutdown for KZ at the webhook",
        )
        print(f"CountryShutdown delivered {seconds:.1f}s after the blackout")
        (shutdown,) = stack.webhook.since(mark, alertname="CountryShutdown")
        assert (shutdown.receiver, shutdown.labels["severity"]) == ("outages", "critical")
        # The sites that went dark with it reach Alertmanager after it (TargetDown's `for:` is
        # longer) and are held back by the inhibition.
        await until(lambda: _sites_inhibited_by_the_shutdown(stack), timeout=45, what="inhibited TargetDown")
        for where, expr in _panel_exprs():
            if where in EMPTY_WHEN_HEALTHY:
                assert await stack.query(_substitute(expr, SHORT_WINDOWS)), f"{where} is empty"
    finally:
        await stack.net.restore_all()
    # Its sites come back with it and resolve while CountryShutdown still fires (its
    # keep_firing_for is longer), so they stay inhibited to the end.
    await _only_the_alert_came_and_went(stack, mark, "CountryShutdown", "country", "KZ")


async def _only_the_alert_came_and_went(
    stack: Stack, mark: int, alertname: str, label: str, value: str
) -> None:
    """Wait for `alertname` to resolve at the webhook, then check that its firing and its resolved
    notice are all that was delivered about outages since `mark`."""
    seconds = await until(
        lambda: _delivered(stack, mark, "resolved", alertname=alertname, **{label: value}),
        timeout=60,
        what=f"{alertname} resolved at the webhook",
    )
    print(f"{alertname} resolved {seconds:.1f}s after the restore")
    await asyncio.sleep(FLUSH_SECONDS)
    sent = [
        (d.status, d.labels["alertname"], d.labels.get(label))
        for d in stack.webhook.since(mark)
        if d.labels.get("scope") in OUTAGE_SCOPES
    ]
    assert sent == [("firing", alertname, value), ("resolved", alertname, value)], sent


async def _delivered(stack: Stack, mark: int, status: str, **labels: str) -> bool:
    return any(d.status == status for d in stack.webhook.since(mark, **labels))


async def _sites_inhibited_by_the_shutdown(stack: Stack) -> bool:
    """Every KZ target down in Prometheus has a TargetDown in Alertmanager, inhibited by the shutdown."""
    (shutdown,) = await stack.alertmanager_alerts(alertname="CountryShutdown", country="KZ")
    targets = await stack.query('monitor_target_up{country="KZ"}')
    down = [s for s in targets if s["value"][1] == "0"]
    sites = await stack.alertmanager_alerts(alertname="TargetDown", country="KZ")
    return (
        2 * len(down) > len(targets)
        and {a["labels"]["target"] for a in sites} == {s["metric"]["target"] for s in down}
        and all(
            a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] == [shutdown["fingerprint"]]
            for a in sites
        )
    )


# --------------------------------------------------------------------------- network outage


async def test_a_network_outage_is_one_alert_with_its_asn_and_silences_its_own_sites_only(
    stack: Stack, healthy: set[tuple[tuple[str, str], ...]]
) -> None:
    asn = f"AS{KCELL}"
    mark = len(stack.webhook.deliveries)
    await stack.net.set_network(KCELL, Mode.REFUSE)
    try:
        seconds = await until(
            lambda: _delivered(stack, mark, "firing", alertname="NetworkOutage", country="KZ", asn=asn),
            timeout=60,
            what=f"NetworkOutage for {asn} at the webhook",
        )
        print(f"NetworkOutage delivered {seconds:.1f}s after {asn} went dark")
        (network,) = stack.webhook.since(mark, alertname="NetworkOutage")
        assert (network.receiver, network.labels["scope"]) == ("outages", "network")
        # Its sites reach Alertmanager after it (TargetDown's `for:` is longer, and the monitor
        # opens the network outage only once they have failed for `settle`), carrying the asn
        # joined from monitor_target_info, and are held back by it; the geo-blocked site elsewhere
        # is not.
        await until(
            lambda: _sites_inhibited_by_the_network(stack, asn),
            timeout=45,
            what=f"its sites' TargetDown inhibited by NetworkOutage {asn}",
        )
    finally:
        await stack.net.restore_all()
    # Its sites come back with it, and resolve while NetworkOutage still fires (its
    # keep_firing_for is longer): nothing about them is sent, first or last.
    await _only_the_alert_came_and_went(stack, mark, "NetworkOutage", "asn", asn)


async def _sites_inhibited_by_the_network(stack: Stack, asn: str) -> bool:
    """Every target of `asn` is down and has a TargetDown with that asn, inhibited by NetworkOutage;
    every other TargetDown (the geo-blocked site) is not."""
    (network,) = await stack.alertmanager_alerts(alertname="NetworkOutage", country="KZ", asn=asn)
    members = {s["metric"]["target"] for s in await stack.query(f'monitor_target_info{{asn="{asn}"}}')}
    down = await stack.query(f'monitor_target_up == 0 and on(target) monitor_target_info{{asn="{asn}"}}')
    sites = await stack.alertmanager_alerts(alertname="TargetDown", country="KZ")
    ours = [a for a in sites if a["labels"].get("asn") == asn]
    others = [a for a in sites if a["labels"].get("asn") != asn]
    return (
        len(members) >= 2
        and {s["metric"]["target"] for s in down} == members
        and {a["labels"]["target"] for a in ours} == members
        and all(
            a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] == [network["fingerprint"]]
            for a in ours
        )
        and bool(others)
        and all(a["status"]["state"] == "active" for a in others)
    )


# --------------------------------------------------------------------------- vantage offline


async def test_our_vantage_going_offline_and_back_alerts_the_operator_and_nobody_else(
    stack: Stack, healthy: set[tuple[tuple[str, str], ...]]
) -> None:
    # The geo-blocked site's TargetDown fired and was delivered before: while we are blind it must
    # neither resolve nor repeat, nor when we are back.
    assert healthy, "expected a TargetDown firing on the healthy network (the geo-blocked site)"
    mark = len(stack.webhook.deliveries)
    offline_at = time.monotonic()
    await stack.net.set_vantage_offline(True)
    try:
        seconds = await until(
            lambda: _delivered(stack, mark, "firing", alertname="VantageOffline"),
            timeout=60,
            what="VantageOffline at the webhook",
        )
        print(f"VantageOffline delivered {seconds:.1f}s after the uplink went")
        (vantage,) = stack.webhook.since(mark, alertname="VantageOffline")
        assert (vantage.receiver, vantage.labels["scope"]) == ("operator", "vantage")
        # The geo-blocked site's TargetDown fires on for its keep_firing_for, muted by
        # VantageOffline, then stops; and for twice the `for:` of the country's and networks'
        # alerts nothing else goes pending: the gate holds them back.
        await until(lambda: _no_outage_alerts(stack), timeout=30, what="no outage alert in Prometheus")
        hold = 2 * max(_fast_seconds(alert, "for") for alert in ("NetworkOutage", "CountryShutdown"))
        await asyncio.sleep(max(0.0, offline_at + hold - time.monotonic()))
        pending = await stack.query(f'ALERTS{{scope=~"{"|".join(OUTAGE_SCOPES)}"}}')
        assert not pending, f"pending or firing while we are offline: {[s['metric'] for s in pending]}"
        # Blind, the monitor exports no state for the targets in the country (unknown, a gap on
        # the dashboards); the controls abroad keep theirs, down.
        blind = await stack.query('monitor_target_up{category!="control"}')
        assert not blind, f"target states exported while we are offline: {[s['metric'] for s in blind]}"
        controls = await stack.query('monitor_target_up{category="control"}')
        assert controls and all(s["value"][1] == "0" for s in controls), controls
        # Every panel about a country's state or reachable share says UNKNOWN or shows nothing:
        # never NORMAL, never a 100 % share (the state tile maps 3 to UNKNOWN).
        tiles = 0
        for where, expr in _panel_exprs():
            if "monitor_country_state" in expr or "monitor_group_reachable_ratio" in expr:
                values = {s["value"][1] for s in await stack.query(_substitute(expr, SHORT_WINDOWS))}
                assert values <= {"3"}, f"{where} while we are offline: {values}"
                tiles += values == {"3"}
            elif "monitor_region_reachable_ratio" in expr or "monitor_network_kind_reachable_ratio" in expr:
                shares = await stack.query(_substitute(expr, SHORT_WINDOWS))
                assert not shares, f"{where} while we are offline: {shares}"
            elif "monitor_country_verdict" in expr:
                series = await stack.query(_substitute(expr, SHORT_WINDOWS))
                verdicts = {sample["metric"]["verdict"] for sample in series}
                assert verdicts == {"vantage"}, f"{where} while we are offline: {verdicts}"
        assert tiles >= 1, "the country state tile should read UNKNOWN"
    finally:
        await stack.net.restore_all()
    seconds = await until(
        lambda: _delivered(stack, mark, "resolved", alertname="VantageOffline"),
        timeout=60,
        what="VantageOffline resolved at the webhook",
    )
    print(f"VantageOffline resolved {seconds:.1f}s after the uplink came back")
    # Back online, the geo-blocked site's TargetDown fires again; Alertmanager announced it before.
    await until(lambda: _healthy_again(stack, healthy), timeout=60, what="the healthy network's alerts")
    await asyncio.sleep(FLUSH_SECONDS)
    outages = [d for d in stack.webhook.since(mark) if d.labels.get("scope") in OUTAGE_SCOPES]
    assert not outages, f"sent about the country while our vantage was offline or coming back: {outages}"
    assert [(d.status, d.receiver) for d in stack.webhook.since(mark)] == [
        ("firing", "operator"), ("resolved", "operator")
    ]  # fmt: skip


async def _no_outage_alerts(stack: Stack) -> bool:
    return not await stack.query(f'ALERTS{{scope=~"{"|".join(OUTAGE_SCOPES)}"}}')


async def _healthy_again(stack: Stack, healthy: set[tuple[tuple[str, str], ...]]) -> bool:
    return await _healthy_alerts(stack) == healthy
